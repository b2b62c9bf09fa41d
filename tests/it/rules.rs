//! Trigger rules against every mix of upstream outcomes, skip propagation and
//! branching, with Airflow's semantics (../shared/design/SEMANTICS.md, from Airflow's
//! `trigger_rule_dep.py` and the "DAGs > Trigger Rules" doc page).

use aileron_model::DagRunState;
use aileron_model::TaskInstanceState::{self, *};
use aileron_tests::{Env, assert_run, assert_states};
use std::fmt::Write;

/// Upstream mixes: S = success, F = failed, K = skipped.
const MIXES: [&str; 6] = ["SS", "SF", "SK", "FF", "KK", "FK"];

/// Expected state of a `noop` task with each rule, per mix in [`MIXES`] order.
const TABLE: &[(&str, [TaskInstanceState; 6])] = &[
    (
        "all_success",
        [
            Success,
            UpstreamFailed,
            Skipped,
            UpstreamFailed,
            Skipped,
            UpstreamFailed,
        ],
    ),
    (
        "all_failed",
        [Skipped, Skipped, Skipped, Success, Skipped, Skipped],
    ),
    (
        "all_done",
        [Success, Success, Success, Success, Success, Success],
    ),
    (
        "all_skipped",
        [Skipped, Skipped, Skipped, Skipped, Success, Skipped],
    ),
    (
        "one_success",
        [
            Success,
            Success,
            Success,
            UpstreamFailed,
            Skipped,
            UpstreamFailed,
        ],
    ),
    (
        "one_failed",
        [Skipped, Success, Skipped, Success, Skipped, Success],
    ),
    (
        "one_done",
        [Success, Success, Success, Success, Skipped, Success],
    ),
    (
        "none_failed",
        [
            Success,
            UpstreamFailed,
            Success,
            UpstreamFailed,
            Success,
            UpstreamFailed,
        ],
    ),
    (
        "none_failed_min_one_success",
        [
            Success,
            UpstreamFailed,
            Success,
            UpstreamFailed,
            Skipped,
            UpstreamFailed,
        ],
    ),
    (
        "none_skipped",
        [Success, Success, Skipped, Success, Skipped, Skipped],
    ),
    (
        "always",
        [Success, Success, Success, Success, Success, Success],
    ),
];

fn upstream_of(mix: &str) -> [&'static str; 2] {
    let pick = |c: char, i: usize| match (c, i) {
        ('S', 0) => "s1",
        ('S', _) => "s2",
        ('F', 0) => "f1",
        ('F', _) => "f2",
        ('K', 0) => "k1",
        _ => "k2",
    };
    let mut chars = mix.chars();
    [
        pick(chars.next().unwrap(), 0),
        pick(chars.next().unwrap(), 1),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_trigger_rule_against_every_upstream_mix() {
    let mut dag = String::from(
        r#"
[tasks.s1]
operator = "noop"
[tasks.s2]
operator = "noop"
[tasks.f1]
operator = "fail"
params = { fatal = true }
[tasks.f2]
operator = "fail"
params = { fatal = true }
[tasks.k1]
operator = "skip"
upstream = ["f1", "f2"]
trigger_rule = "all_done"
[tasks.k2]
operator = "skip"
upstream = ["f1", "f2"]
trigger_rule = "all_done"
"#,
    );
    // The skips come after the failures: `all_success` decides as soon as it sees
    // either, so with both upstreams racing the outcome would depend on timing.
    for (rule, _) in TABLE {
        for mix in MIXES {
            let [a, b] = upstream_of(mix);
            writeln!(
                dag,
                "[tasks.{rule}__{mix}]\noperator = \"noop\"\nupstream = [\"{a}\", \"{b}\"]\ntrigger_rule = \"{rule}\""
            )
            .unwrap();
        }
    }
    let env = Env::builder().dag("rules.toml", &dag).start().await;
    let o = env.run("rules", serde_json::json!({})).await;
    let mut wrong = Vec::new();
    for (rule, expected) in TABLE {
        for (mix, want) in MIXES.iter().zip(expected) {
            let ti = o.ti(&format!("{rule}__{mix}"));
            if ti.state != *want {
                wrong.push(format!("{rule} with {mix}: got {}, want {want}", ti.state));
            }
            // Tasks decided without running have no try (SEMANTICS: "never ran").
            if matches!(ti.state, Skipped | UpstreamFailed) {
                assert_eq!(ti.try_number, 0, "{rule} with {mix} must not have run");
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "trigger rules wrong:\n{}",
        wrong.join("\n")
    );
    assert_states(&o, &[("s1", Success), ("f1", Failed), ("k1", Skipped)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skips_propagate_down_a_chain_and_stop_at_tolerant_rules() {
    let dag = r#"
[tasks.start]
operator = "skip"
[tasks.a]
operator = "noop"
upstream = ["start"]
[tasks.b]
operator = "noop"
upstream = ["a"]
[tasks.ok]
operator = "noop"
[tasks.join]
operator = "noop"
upstream = ["b", "ok"]
trigger_rule = "none_failed_min_one_success"
[tasks.after_all]
operator = "noop"
upstream = ["b"]
trigger_rule = "all_done"
"#;
    let env = Env::builder().dag("chain.toml", dag).start().await;
    let o = env.run("chain", serde_json::json!({})).await;
    assert_states(
        &o,
        &[
            ("start", Skipped),
            ("a", Skipped),
            ("b", Skipped),
            ("join", Success),
            ("after_all", Success),
        ],
    );
    assert_run(&o, DagRunState::Success);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn branch_follows_only_the_chosen_tasks() {
    let dag = r#"
[tasks.pick]
operator = "branch"
params = { follow = "left" }
[tasks.left]
operator = "noop"
upstream = ["pick"]
[tasks.right]
operator = "noop"
upstream = ["pick"]
[tasks.right_more]
operator = "noop"
upstream = ["right"]
[tasks.join]
operator = "noop"
upstream = ["left", "right_more"]
trigger_rule = "none_failed_min_one_success"
"#;
    let env = Env::builder().dag("branchy.toml", dag).start().await;
    let o = env.run("branchy", serde_json::json!({})).await;
    assert_states(
        &o,
        &[
            ("pick", Success),
            ("left", Success),
            ("right", Skipped),
            ("right_more", Skipped),
            ("join", Success),
        ],
    );
    assert_run(&o, DagRunState::Success);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn branch_to_a_list_and_to_a_task_that_is_not_downstream() {
    let dag = r#"
[tasks.pick]
operator = "branch"
params = { follow = ["a", "b"] }
[tasks.a]
operator = "noop"
upstream = ["pick"]
[tasks.b]
operator = "noop"
upstream = ["pick"]
[tasks.c]
operator = "noop"
upstream = ["pick"]
[tasks.bad_pick]
operator = "branch"
params = { follow = "a" }
[tasks.d]
operator = "noop"
upstream = ["bad_pick"]
"#;
    let env = Env::builder().dag("branch_list.toml", dag).start().await;
    let o = env.run("branch_list", serde_json::json!({})).await;
    assert_states(
        &o,
        &[
            ("a", Success),
            ("b", Success),
            ("c", Skipped),
            ("bad_pick", Failed),
            ("d", UpstreamFailed),
        ],
    );
    let error = o.ti("bad_pick").tries[0].error.clone().unwrap();
    assert!(error.contains("not direct downstream"), "{error}");
    assert_run(&o, DagRunState::Failed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_fails_only_through_leaves() {
    // SEMANTICS "DagRun state": a failed task that is not a leaf fails the run only
    // through its downstream leaves; here `cleanup` (all_done) succeeds, so the run
    // succeeds although `work` failed.
    let dag = r#"
[tasks.work]
operator = "fail"
[tasks.cleanup]
operator = "noop"
upstream = ["work"]
trigger_rule = "all_done"
"#;
    let env = Env::builder().dag("leaves.toml", dag).start().await;
    let o = env.run("leaves", serde_json::json!({})).await;
    assert_states(&o, &[("work", Failed), ("cleanup", Success)]);
    assert_run(&o, DagRunState::Success);
}
