//! What one turn of the scheduler takes from its channel.
//!
//! A turn lasts as long as the work it takes, and a step of any run waits for the
//! turn in progress before its own. So when tenants compete, a turn takes at most
//! [`EVENTS_PER_TURN`] executor reports of each tenant per unit of its weight and
//! holds the rest back, in order, for the next turns: a tenant whose thousands of
//! short tries finish every turn no longer sets the pace of a neighbour's chain.
//! Alone, a tenant's reports are all taken at once, the largest group commit.
//!
//! Only reports of tries are held back: the local executor's, and a worker's
//! start and finish (its call waits for the answer meanwhile). Any other command
//! (a trigger, a clear, a `sync`) is taken with every report that arrived before
//! it, so "applied after everything sent before it" still holds for each.

use super::{Command, ExecutorEvent};
use std::collections::{HashMap, VecDeque};
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TryRecvError;

/// A tenant's executor reports one turn takes per unit of weight while another
/// tenant has tries in flight. Small enough that a turn under a flood of noop
/// tries stays short (measured: 1.4 ms for the ~21 reports a turn took uncapped);
/// large enough that a capped tenant (two reports a try, its start and its end)
/// still has several tries committed per fsync. Reports held back cannot pile
/// up: a try whose end is held still counts as in flight, so nothing new is
/// admitted in its place until it is applied.
pub const EVENTS_PER_TURN: usize = 8;

/// The most commands one turn takes in all, so a turn cannot grow without bound.
const MAX_PER_TURN: usize = 10_000;

/// How many reports of each tenant this turn may take; `None` takes them all.
pub(super) type Caps<'a> = Option<HashMap<&'a str, usize>>;

/// The caps for a turn, from the tenants with tries in flight and their weights:
/// none unless at least two compete.
pub(super) fn caps(in_flight: Vec<(&str, u32)>) -> Caps<'_> {
    (in_flight.len() > 1).then(|| {
        in_flight
            .into_iter()
            .map(|(tenant, weight)| (tenant, EVENTS_PER_TURN * weight.max(1) as usize))
            .collect()
    })
}

/// The scheduler's channel and the reports held back from earlier turns.
pub(super) struct Inbox {
    rx: mpsc::UnboundedReceiver<Command>,
    /// Per tenant, in arrival order.
    held: HashMap<String, VecDeque<Command>>,
}

impl Inbox {
    pub(super) fn new(rx: mpsc::UnboundedReceiver<Command>) -> Self {
        Self {
            rx,
            held: HashMap::new(),
        }
    }

    /// Whether reports are waiting for a turn: the loop must not sleep then.
    pub(super) fn has_held(&self) -> bool {
        !self.held.is_empty()
    }

    /// The next command without waiting.
    pub(super) fn try_next(&mut self) -> Result<Command, TryRecvError> {
        self.rx.try_recv()
    }

    /// The next command, waiting for it.
    pub(super) async fn recv(&mut self) -> Option<Command> {
        self.rx.recv().await
    }

    /// One turn's commands, in the order to apply them: first what was held back
    /// (within `caps`), then `first` and whatever else is pending. (A closed
    /// channel ends the turn; the loop sees it closed next time it looks.)
    pub(super) fn turn(&mut self, first: Option<Command>, caps: &Caps<'_>) -> Vec<Command> {
        let mut taken: HashMap<String, usize> = HashMap::new();
        let mut out = Vec::new();
        let cap = |tenant: &str| {
            caps.as_ref()
                .map(|c| c.get(tenant).copied().unwrap_or(EVENTS_PER_TURN))
        };
        // Held reports first: they arrived before anything still in the channel.
        self.held.retain(|tenant, queue| {
            let n = cap(tenant).unwrap_or(usize::MAX).min(queue.len());
            out.extend(queue.drain(..n));
            taken.insert(tenant.clone(), n);
            !queue.is_empty()
        });
        let mut next = first;
        for _ in 0..MAX_PER_TURN {
            let cmd = match next.take() {
                Some(cmd) => cmd,
                None => match self.try_next() {
                    Ok(cmd) => cmd,
                    Err(_) => break,
                },
            };
            let Some(tenant) = report_tenant(&cmd).map(str::to_owned) else {
                // Everything held arrived before this command: apply it first.
                for (_, queue) in self.held.drain() {
                    out.extend(queue);
                }
                out.push(cmd);
                continue;
            };
            let count = taken.entry(tenant.clone()).or_default();
            // Behind its own held reports, or over its cap: held, in order.
            let behind = self.held.contains_key(&tenant);
            if !behind && cap(&tenant).is_none_or(|cap| *count < cap) {
                *count += 1;
                out.push(cmd);
            } else {
                self.held.entry(tenant).or_default().push_back(cmd);
            }
        }
        out
    }
}

/// The tenant of a report about a task try, from the local executor or a
/// worker (whose start and finish wait for their answer meanwhile): the only
/// commands a turn may hold back.
fn report_tenant(cmd: &Command) -> Option<&str> {
    match cmd {
        Command::Executor(
            ExecutorEvent::Started { key, .. } | ExecutorEvent::Finished { key, .. },
        )
        | Command::RemoteStart { key, .. }
        | Command::RemoteFinish { key, .. } => Some(&key.tenant),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aileron_model::TiKey;

    fn started(tenant: &str, task: usize) -> Command {
        Command::Executor(ExecutorEvent::Started {
            key: TiKey {
                tenant: tenant.to_owned(),
                dag_id: "d".to_owned(),
                run_id: "r".to_owned(),
                task_id: format!("t{task}"),
                map_index: -1,
            },
            try_number: 1,
            attempt: 1,
            at: jiff::Timestamp::UNIX_EPOCH,
        })
    }

    /// `tenant/task` for a report, `sync` for anything else.
    fn names(cmds: &[Command]) -> Vec<String> {
        cmds.iter()
            .map(|c| match c {
                Command::Executor(ExecutorEvent::Started { key, .. }) => {
                    format!("{}/{}", key.tenant, key.task_id)
                }
                _ => "sync".to_owned(),
            })
            .collect()
    }

    fn inbox() -> (mpsc::UnboundedSender<Command>, Inbox) {
        let (tx, rx) = mpsc::unbounded_channel();
        (tx, Inbox::new(rx))
    }

    fn flood(tx: &mpsc::UnboundedSender<Command>, tenant: &str, n: usize) {
        for i in 0..n {
            tx.send(started(tenant, i)).unwrap();
        }
    }

    #[test]
    fn a_tenant_alone_is_taken_whole() {
        let (tx, mut inbox) = inbox();
        flood(&tx, "a", 50);
        let turn = inbox.turn(None, &caps(vec![("a", 1)]));
        assert_eq!(turn.len(), 50);
        assert!(!inbox.has_held());
    }

    #[test]
    fn competing_tenants_are_capped_by_weight_and_keep_their_order() {
        let (tx, mut inbox) = inbox();
        flood(&tx, "a", 40);
        flood(&tx, "b", 2);
        let caps = caps(vec![("a", 3), ("b", 1)]);
        let first = names(&inbox.turn(None, &caps));
        let expected: Vec<String> = (0..24)
            .map(|i| format!("a/t{i}"))
            .chain(["b/t0".to_owned(), "b/t1".to_owned()])
            .collect();
        assert_eq!(first, expected);
        assert!(inbox.has_held());
        // A report of `a` arriving now queues behind the held ones.
        tx.send(started("a", 99)).unwrap();
        let second = names(&inbox.turn(None, &caps));
        let expected: Vec<String> = (24..40)
            .map(|i| format!("a/t{i}"))
            .chain(["a/t99".to_owned()])
            .collect();
        assert_eq!(second, expected);
        assert!(!inbox.has_held());
    }

    #[test]
    fn any_other_command_comes_after_every_report_sent_before_it() {
        let (tx, mut inbox) = inbox();
        flood(&tx, "a", 20);
        let (reply, _rx) = tokio::sync::oneshot::channel();
        tx.send(Command::Sync { reply }).unwrap();
        tx.send(started("a", 20)).unwrap();
        let caps = caps(vec![("a", 1), ("b", 1)]);
        let turn = names(&inbox.turn(None, &caps));
        assert_eq!(turn.len(), 21, "{turn:?}");
        assert_eq!(turn[20], "sync");
        assert_eq!(
            &turn[..20],
            (0..20).map(|i| format!("a/t{i}")).collect::<Vec<_>>()
        );
        // What came after the sync waits for the next turn like any report.
        assert_eq!(names(&inbox.turn(None, &caps)), ["a/t20"]);
    }

    #[test]
    fn a_worker_s_starts_are_held_like_the_local_executor_s_reports() {
        let (tx, mut inbox) = inbox();
        let mut replies = Vec::new();
        for i in 0..10 {
            let (reply, rx) = tokio::sync::oneshot::channel();
            replies.push(rx);
            let Command::Executor(ExecutorEvent::Started { key, .. }) = started("a", i) else {
                unreachable!()
            };
            tx.send(Command::RemoteStart {
                key,
                try_number: 1,
                attempt: i as u64,
                worker: "w".to_owned(),
                reply,
            })
            .unwrap();
        }
        tx.send(started("b", 0)).unwrap();
        let caps = caps(vec![("a", 1), ("b", 1)]);
        let turn = inbox.turn(None, &caps);
        let attempts: Vec<u64> = turn
            .iter()
            .filter_map(|c| match c {
                Command::RemoteStart { attempt, .. } => Some(*attempt),
                _ => None,
            })
            .collect();
        assert_eq!(attempts, (0..EVENTS_PER_TURN as u64).collect::<Vec<_>>());
        assert_eq!(turn.len(), EVENTS_PER_TURN + 1, "b's report is taken too");
        assert_eq!(inbox.turn(None, &caps).len(), 10 - EVENTS_PER_TURN);
    }
}
