//! `aileron dags backfill`: plans a backfill on a running server (its dry run),
//! creates it, then follows it to the end with a progress bar, exiting 0 only if
//! every run it made succeeded.

use super::ServerArgs;
use super::client::{Client, seg};
use serde_json::{Value, json};
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

#[derive(clap::Args)]
pub struct BackfillArgs {
    dag_id: String,
    /// The first logical date: a date (2026-01-01) or an RFC 3339 date-time.
    #[arg(long = "from", alias = "from-date", value_name = "DATE")]
    from: String,
    /// The last logical date, included.
    #[arg(long = "to", alias = "to-date", value_name = "DATE")]
    to: String,
    /// What to do with dates that already have a run: leave them (none), re-run the
    /// failed ones, or re-run every finished one (completed, or all).
    #[arg(
        long,
        alias = "reprocess-behavior",
        default_value = "none",
        value_parser = ["none", "failed", "completed", "all"]
    )]
    reprocess: String,
    /// How many of the backfill's runs may be running at once.
    #[arg(long, default_value_t = 10)]
    max_active_runs: u32,
    /// Start with the newest logical date.
    #[arg(long)]
    run_backwards: bool,
    /// The conf of every run, a JSON object.
    #[arg(long, alias = "dag-run-conf")]
    conf: Option<String>,
    /// Print what would be done and create nothing.
    #[arg(long)]
    dry_run: bool,
    /// Create the backfill and return without following it.
    #[arg(long)]
    no_wait: bool,
    /// Print one JSON document `{"dry_run", "plan", "backfill"}` instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    server: ServerArgs,
}

/// How often a backfill is polled while following it: often enough that the bar
/// moves with the runs, rarely enough to cost the server nothing.
const POLL: Duration = Duration::from_secs(1);

/// Consecutive failed polls (a server restarting, a network blip) tolerated before
/// giving up on following the backfill; the backfill itself goes on regardless.
const MAX_POLL_ERRORS: u32 = 30;

/// Width of the terminal progress bar, in characters.
const BAR: usize = 30;

pub async fn run(a: BackfillArgs) -> anyhow::Result<ExitCode> {
    for (flag, d) in [("--from", &a.from), ("--to", &a.to)] {
        aileron_model::dag::parse_user_datetime(d)
            .map_err(|e| anyhow::anyhow!("{flag} {d}: {e}"))?;
    }
    let conf = super::parse_conf(a.conf.as_deref())?;
    let body = json!({
        "dag_id": a.dag_id,
        "from_date": a.from,
        "to_date": a.to,
        "run_backwards": a.run_backwards,
        "dag_run_conf": conf,
        "reprocess_behavior": a.reprocess,
        "max_active_runs": a.max_active_runs,
    });
    let client = Client::new(&a.server);
    // The dry run first: it validates the request and says what each date gets
    // before anything is created.
    let plan = client
        .request(
            reqwest::Method::POST,
            // Every date, the skipped ones with why (Aileron's own option).
            "/backfills/dry_run?include_skipped=true",
            Some(body.clone()),
        )
        .await?;
    let dates = plan["backfills"].as_array().cloned().unwrap_or_default();
    if !a.json {
        print_plan(&a.dag_id, &dates);
    }
    if a.dry_run {
        if a.json {
            print_json(true, &dates, &Value::Null)?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let created = client
        .request(reqwest::Method::POST, "/backfills", Some(body))
        .await?;
    let id = created["id"]
        .as_u64()
        .ok_or_else(|| anyhow::anyhow!("the server answered a backfill without an id"))?;
    if !a.json {
        println!(
            "Created backfill {id} of {} with {} runs (UI: {}/#/dags/{}/backfills).",
            a.dag_id,
            created["total_runs"],
            a.server.server.trim_end_matches('/'),
            seg(&a.dag_id)
        );
    }
    if a.no_wait {
        if a.json {
            print_json(false, &dates, &created)?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let done = follow(&client, id, !a.json).await?;
    let progress = Progress::of(&done);
    if a.json {
        print_json(false, &dates, &done)?;
    } else {
        summarize(&client, &a.dag_id, &done, &progress).await?;
    }
    Ok(if progress.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn print_json(dry_run: bool, plan: &[Value], backfill: &Value) -> anyhow::Result<()> {
    let doc = json!({"dry_run": dry_run, "plan": plan, "backfill": backfill});
    println!("{}", serde_json::to_string(&doc)?);
    Ok(())
}

/// Lists what each logical date gets; a long range shows its two ends.
fn print_plan(dag_id: &str, dates: &[Value]) {
    const HEAD: usize = 20;
    const TAIL: usize = 10;
    println!("Backfill of {dag_id}: {} logical dates", dates.len());
    let line = |d: &Value| {
        let mut s = format!(
            "  {:<27} {:<9}",
            d["logical_date"].as_str().unwrap_or(""),
            d["action"].as_str().unwrap_or("")
        );
        if let Some(run) = d["run_id"].as_str() {
            s.push(' ');
            s.push_str(run);
        }
        if let Some(reason) = d["reason"].as_str() {
            s.push_str(&format!(" ({reason})"));
        }
        s.trim_end().to_owned()
    };
    if dates.len() <= HEAD + TAIL + 1 {
        dates.iter().for_each(|d| println!("{}", line(d)));
    } else {
        dates[..HEAD].iter().for_each(|d| println!("{}", line(d)));
        println!("  … {} more …", dates.len() - HEAD - TAIL);
        dates[dates.len() - TAIL..]
            .iter()
            .for_each(|d| println!("{}", line(d)));
    }
    let count = |action: &str| dates.iter().filter(|d| d["action"] == action).count();
    println!(
        "{} to create, {} to re-run, {} skipped",
        count("create"),
        count("reprocess"),
        count("skip")
    );
}

/// A backfill's progress as the API counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Progress {
    total: u64,
    queued: u64,
    running: u64,
    success: u64,
    failed: u64,
    paused: bool,
    complete: bool,
}

impl Progress {
    fn of(b: &Value) -> Self {
        let n = |k: &str| b["runs_by_state"][k].as_u64().unwrap_or(0);
        let (queued, running) = (n("queued"), n("running"));
        let (success, failed) = (n("success"), n("failed"));
        let total = b["total_runs"].as_u64().unwrap_or(0);
        Self {
            total,
            queued,
            running,
            success,
            failed,
            paused: b["is_paused"] == true,
            // The scheduler marks it complete once its runs are all finished; the
            // counts say so too, which spares one more poll.
            complete: !b["completed_at"].is_null()
                || (queued + running == 0 && success + failed >= total),
        }
    }

    fn done(&self) -> u64 {
        self.success + self.failed
    }

    fn line(&self) -> String {
        format!(
            "{}/{} runs done: {} success, {} failed, {} running, {} queued{}",
            self.done(),
            self.total,
            self.success,
            self.failed,
            self.running,
            self.queued,
            if self.paused && !self.complete {
                " (paused)"
            } else {
                ""
            }
        )
    }

    /// `[=====xx>>>      ]`: success, failed, running, then what is left.
    fn bar(&self) -> String {
        let total = self.total.max(1) as f64;
        let cells = |n: u64| ((n as f64 / total) * BAR as f64).round() as usize;
        let mut s = String::with_capacity(BAR + 2);
        s.push('[');
        for (n, c) in [(self.success, '='), (self.failed, 'x'), (self.running, '>')] {
            let room = BAR.saturating_sub(s.len() - 1);
            s.extend(std::iter::repeat_n(c, cells(n).min(room)));
        }
        let room = BAR.saturating_sub(s.len() - 1);
        s.extend(std::iter::repeat_n(' ', room));
        s.push(']');
        s
    }
}

/// Polls the backfill until it is complete. On a terminal the progress bar is
/// redrawn in place; otherwise (a pipe, a CI log) one line is printed per change.
async fn follow(client: &Client, id: u64, speak: bool) -> anyhow::Result<Value> {
    let tty = speak && std::io::stdout().is_terminal();
    let mut last: Option<Progress> = None;
    let mut errors = 0;
    loop {
        let b = match client.get(&format!("/backfills/{id}")).await {
            Ok(b) => {
                errors = 0;
                b
            }
            Err(e) if errors < MAX_POLL_ERRORS => {
                errors += 1;
                tracing::warn!("cannot read backfill {id} (will retry): {e:#}");
                tokio::time::sleep(POLL).await;
                continue;
            }
            Err(e) => {
                if tty {
                    println!();
                }
                return Err(e.context(format!(
                    "lost track of backfill {id}; it goes on in the server"
                )));
            }
        };
        let p = Progress::of(&b);
        if tty {
            let mut out = std::io::stdout().lock();
            write!(out, "\r\x1b[2K{} {}", p.bar(), p.line())?;
            out.flush()?;
        } else if speak && last != Some(p) {
            println!("backfill {id}: {}", p.line());
        }
        last = Some(p);
        if p.complete {
            if tty {
                println!();
            }
            return Ok(b);
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn summarize(client: &Client, dag_id: &str, b: &Value, p: &Progress) -> anyhow::Result<()> {
    let id = &b["id"];
    let skipped = b["skipped_dates"].as_array().map_or(0, Vec::len);
    // A cancelled backfill is paused and complete; so is one whose last runs
    // finished while it was paused: the API does not tell them apart.
    let how = if b["is_paused"] == true {
        "ended (paused or cancelled)"
    } else {
        "is complete"
    };
    println!(
        "Backfill {id} of {dag_id} {how}: {} runs, {} success, {} failed; {skipped} dates skipped.",
        p.total, p.success, p.failed
    );
    if p.failed > 0 {
        let ours: std::collections::HashSet<&str> = b["run_ids"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let failed = client
            .get(&format!(
                "/dags/{}/dagRuns?state=failed&limit=10000",
                seg(dag_id)
            ))
            .await?;
        println!("Failed runs:");
        for r in failed["dag_runs"].as_array().into_iter().flatten() {
            if let Some(run_id) = r["dag_run_id"].as_str().filter(|r| ours.contains(*r)) {
                println!("  {run_id}");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress(total: u64, success: u64, failed: u64, running: u64) -> Progress {
        Progress::of(&json!({
            "total_runs": total,
            "completed_at": null,
            "is_paused": false,
            "runs_by_state": {
                "queued": total - success - failed - running,
                "running": running,
                "success": success,
                "failed": failed,
            },
        }))
    }

    #[test]
    fn the_bar_is_always_its_full_width() {
        for (t, s, f, r) in [(0, 0, 0, 0), (3, 1, 1, 1), (7, 7, 0, 0), (10, 3, 3, 3)] {
            let bar = progress(t, s, f, r).bar();
            assert_eq!(bar.chars().count(), BAR + 2, "{bar:?}");
        }
        assert_eq!(
            progress(2, 1, 0, 1).bar(),
            format!("[{}{}]", "=".repeat(15), ">".repeat(15))
        );
    }

    #[test]
    fn progress_is_complete_when_every_run_finished() {
        assert!(!progress(3, 1, 1, 1).complete);
        assert!(progress(3, 2, 1, 0).complete);
        assert_eq!(
            progress(3, 2, 1, 0).line(),
            "3/3 runs done: 2 success, 1 failed, 0 running, 0 queued"
        );
    }
}
