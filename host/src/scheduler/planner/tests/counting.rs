//! The census a run keeps of its TaskInstances stays equal to counting them
//! afresh, whichever of `ActiveRun`'s methods changed them.

use super::*;
use crate::scheduler::planner::census::Census;

fn counted(r: &ActiveRun) -> Census {
    Census::of(r.tis().values())
}

#[test]
fn states_index_the_census_in_order() {
    for (i, s) in S::ALL.iter().enumerate() {
        assert_eq!(*s as usize, i, "{s:?}");
    }
}

#[test]
fn the_census_follows_every_change() {
    let dag = spec(
        "wide",
        r#"
[tasks.a]
operator = "noop"
[tasks.b]
operator = "noop"
[tasks.m]
operator = "noop"
"#,
    );
    let mut r = run(&dag, 0, &[("a", S::Running), ("m[0]", S::Success)]);
    assert_eq!(r.census(), &counted(&r));
    assert_eq!(r.census().count(S::NoStatus), 1);
    assert!(r.census().any_unfinished());

    // One at a time, through the guard: a retry waits on its delay.
    {
        let mut a = r.ti_mut("a", -1).unwrap();
        a.state = S::UpForRetry;
        a.next_try_at = Some(at(3));
    }
    assert_eq!(r.census(), &counted(&r));
    assert_eq!(r.census().next_delay_after(at(0)), Some(at(3)));
    assert_eq!(r.census().next_delay_after(at(3)), None);

    // Added, replaced and removed.
    let mut extra = r.ti("m", 0).unwrap().clone();
    extra.map_index = 1;
    extra.state = S::UpForReschedule;
    extra.next_try_at = Some(at(2));
    assert!(r.insert_ti(extra.clone()).is_none());
    assert_eq!(r.census().next_delay_after(at(0)), Some(at(2)));
    extra.state = S::Scheduled;
    assert!(r.insert_ti(extra).is_some());
    assert_eq!(r.census(), &counted(&r));
    assert_eq!(r.census().count(S::Scheduled), 1);
    r.remove_ti("m", 1);
    assert_eq!(r.census(), &counted(&r));

    // Many at once.
    r.update_tis(|ti| {
        ti.state = S::Success;
        ti.next_try_at = None;
    });
    assert_eq!(r.census(), &counted(&r));
    assert!(!r.census().any_unfinished());
    assert_eq!(r.census().next_delay_after(at(0)), None);
}

#[test]
fn two_waiting_on_one_moment_are_both_counted() {
    let dag = spec(
        "two",
        r#"
[tasks.a]
operator = "noop"
[tasks.b]
operator = "noop"
"#,
    );
    let mut r = run(&dag, 0, &[]);
    for task in ["a", "b"] {
        let mut ti = r.ti_mut(task, -1).unwrap();
        ti.state = S::UpForRetry;
        ti.next_try_at = Some(at(5));
    }
    r.ti_mut("a", -1).unwrap().state = S::Queued;
    // `b` still waits on the same moment.
    assert_eq!(r.census().next_delay_after(at(0)), Some(at(5)));
    r.ti_mut("b", -1).unwrap().state = S::Queued;
    assert_eq!(r.census().next_delay_after(at(0)), None);
    assert_eq!(r.census(), &counted(&r));
}
