//! The log of one TaskInstance try: timestamped lines with a byte cap, readable while
//! the try runs.

use std::fmt;
use std::sync::Mutex;

use tokio::sync::watch;

/// Where a log line came from: a level of the guest's `log` host call, the
/// guest's stdout or stderr, or the sandbox itself (which logs at the levels).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
    /// A line the guest wrote to stdout.
    Stdout,
    /// A line the guest wrote to stderr.
    Stderr,
}

impl LogLevel {
    /// The tag written into each line, upper case like Airflow's task logs.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "DEBUG",
            LogLevel::Info => "INFO",
            LogLevel::Warn => "WARN",
            LogLevel::Error => "ERROR",
            LogLevel::Stdout => "STDOUT",
            LogLevel::Stderr => "STDERR",
        }
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Default cap of a try's log: 1 MiB holds tens of thousands of ordinary lines,
/// more than anyone reads in a task log, while a thousand concurrent tries that
/// all spam their output still fit in about a gigabyte of host memory.
pub const DEFAULT_LOG_BYTES: usize = 1 << 20;

/// Thread-safe, append-only log text with a byte cap.
///
/// Lines look like `[2026-11-24T01:02:03.456Z] INFO message`. Once a line does not
/// fit under the cap, the part that fits is kept, one final marker line
/// `... log truncated at N bytes` is appended, and everything after is dropped. The
/// caller can read the log while the try runs (live tailing): [`snapshot`],
/// [`read_from`] and [`subscribe`] never block the guest for longer than a copy.
///
/// [`snapshot`]: LogBuffer::snapshot
/// [`read_from`]: LogBuffer::read_from
/// [`subscribe`]: LogBuffer::subscribe
#[derive(Debug)]
pub struct LogBuffer {
    cap: usize,
    state: Mutex<State>,
    /// The current length in bytes, so tailers can wait for new text without polling.
    len: watch::Sender<usize>,
}

#[derive(Debug, Default)]
struct State {
    text: String,
    truncated: bool,
}

impl LogBuffer {
    /// An empty log that keeps at most `cap` bytes of lines (plus the marker line).
    pub fn new(cap: usize) -> Self {
        LogBuffer {
            cap,
            state: Mutex::new(State::default()),
            len: watch::Sender::new(0),
        }
    }

    /// Appends one line stamped with the current time. A message with embedded
    /// newlines stays one entry (like a Python traceback in an Airflow log).
    pub fn append_line(&self, level: LogLevel, message: &str) {
        let stamp = jiff::Timestamp::now();
        let mut state = self.lock();
        if state.truncated {
            return;
        }
        let line = format_line(stamp, level, message);
        self.push_capped(&mut state, &line);
        let len = state.text.len();
        drop(state);
        self.len.send_replace(len);
    }

    /// Appends text that is already formatted, such as lines a remote worker
    /// stamped and sent on, as is. The cap applies exactly as to
    /// [`append_line`](LogBuffer::append_line): what fits is kept, the marker line
    /// closes the log, and everything after is dropped.
    ///
    /// A buffer that mirrors a worker's log byte for byte needs a larger cap than
    /// the worker's: the worker's own marker and closing line go past that cap, and
    /// would be cut here.
    pub fn append_raw(&self, text: &str) {
        if text.is_empty() {
            return;
        }
        let mut state = self.lock();
        if state.truncated {
            return;
        }
        self.push_capped(&mut state, text);
        let len = state.text.len();
        drop(state);
        self.len.send_replace(len);
    }

    /// Appends the line that says how the try ended, even past the cap: whoever
    /// opens a truncated log must still find the outcome at its end. The sandbox
    /// writes exactly one such line per try, and its reasons are bounded.
    pub fn append_closing_line(&self, level: LogLevel, message: &str) {
        let line = format_line(jiff::Timestamp::now(), level, message);
        let mut state = self.lock();
        state.text.push_str(&line);
        let len = state.text.len();
        drop(state);
        self.len.send_replace(len);
    }

    /// The whole log so far.
    pub fn snapshot(&self) -> String {
        self.lock().text.clone()
    }

    /// The log from byte `offset` on (empty when `offset` is at or past the end), for
    /// tailing: remember `offset + returned.len()` and call again.
    pub fn read_from(&self, offset: usize) -> String {
        let state = self.lock();
        // Offsets always come from earlier lengths, which are line ends; clamp anyway
        // so a bad offset cannot panic.
        let mut start = offset.min(state.text.len());
        while !state.text.is_char_boundary(start) {
            start -= 1;
        }
        state.text[start..].to_owned()
    }

    /// Current length in bytes.
    pub fn len(&self) -> usize {
        self.lock().text.len()
    }

    /// Whether nothing was logged yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the cap was hit and later lines were dropped.
    pub fn is_truncated(&self) -> bool {
        self.lock().truncated
    }

    /// The byte cap this log was created with.
    pub fn cap(&self) -> usize {
        self.cap
    }

    /// A receiver of the log's length, updated after every append: a tailer waits
    /// with `changed().await` and then calls [`read_from`](LogBuffer::read_from).
    pub fn subscribe(&self) -> watch::Receiver<usize> {
        self.len.subscribe()
    }

    /// Appends `text` under the cap; the caller has checked that the log is not
    /// truncated yet.
    fn push_capped(&self, state: &mut State, text: &str) {
        // Saturating: a closing line may already have taken the text past the cap.
        let room = self.cap.saturating_sub(state.text.len());
        if text.len() <= room {
            state.text.push_str(text);
            return;
        }
        // Keep what fits (at a character boundary) so the last words before the
        // cap are not lost, then close the log with the marker.
        let mut end = room;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        state.text.push_str(&text[..end]);
        if !state.text.is_empty() && !state.text.ends_with('\n') {
            state.text.push('\n');
        }
        state
            .text
            .push_str(&format!("... log truncated at {} bytes\n", self.cap));
        state.truncated = true;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the text half-written in a
        // way that matters (push_str is all or nothing), so poisoning is ignored.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn format_line(stamp: jiff::Timestamp, level: LogLevel, message: &str) -> String {
    // `{:.3}` prints RFC 3339 in UTC with milliseconds: 2026-11-24T01:02:03.456Z.
    format!("[{stamp:.3}] {level} {message}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_timestamped_and_tagged() {
        let log = LogBuffer::new(1024);
        log.append_line(LogLevel::Info, "hello");
        log.append_line(LogLevel::Stdout, "from the guest");
        let text = log.snapshot();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        // [2026-11-24T01:02:03.456Z] INFO hello
        let (stamp, rest) = lines[0].split_once("] ").unwrap();
        assert!(stamp.starts_with('['), "{stamp}");
        assert_eq!(stamp.len(), "[2026-11-24T01:02:03.456Z".len(), "{stamp}");
        assert!(stamp.ends_with('Z'));
        assert_eq!(rest, "INFO hello");
        assert!(lines[1].ends_with("] STDOUT from the guest"));
    }

    #[test]
    fn cap_keeps_what_fits_then_one_marker() {
        let log = LogBuffer::new(100);
        for i in 0..10 {
            log.append_line(LogLevel::Info, &format!("line number {i}"));
        }
        let text = log.snapshot();
        assert!(log.is_truncated());
        assert!(text.ends_with("... log truncated at 100 bytes\n"), "{text}");
        assert_eq!(text.matches("truncated").count(), 1);
        let before_marker = text.len() - "... log truncated at 100 bytes\n".len();
        // The kept part is at most the cap (plus the newline closing a cut line).
        assert!(before_marker <= 101, "{before_marker}");
        let len = log.len();
        log.append_line(LogLevel::Error, "dropped");
        assert_eq!(log.len(), len);
        log.append_closing_line(LogLevel::Error, "Task failed: kept");
        assert!(log.snapshot().ends_with("ERROR Task failed: kept\n"));
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        let log = LogBuffer::new(40);
        log.append_line(LogLevel::Info, &"é".repeat(50));
        assert!(log.is_truncated());
        // Would have panicked on a bad boundary; the text is valid UTF-8 by type.
        assert!(log.snapshot().contains("log truncated at 40 bytes"));
    }

    #[test]
    fn raw_text_is_appended_as_is() {
        let log = LogBuffer::new(1024);
        let mut rx = log.subscribe();
        let remote = "[2026-11-24T01:02:03.456Z] INFO from a worker\n\
                      [2026-11-24T01:02:03.457Z] STDOUT second line\n";
        log.append_raw(remote);
        assert_eq!(log.snapshot(), remote);
        assert_eq!(*rx.borrow_and_update(), remote.len());
        // A chunk may end mid-line; the next one continues it.
        log.append_raw("[2026-11-24T01:02:04.000Z] INFO par");
        log.append_raw("tial\n");
        assert!(log.snapshot().ends_with("] INFO partial\n"));
        assert_eq!(*rx.borrow_and_update(), log.len());
        // Nothing to append: no change, no wake-up.
        log.append_raw("");
        assert!(!rx.has_changed().unwrap());
        assert!(!log.is_truncated());
    }

    #[test]
    fn raw_text_is_capped_like_lines() {
        let stamp: jiff::Timestamp = "2026-11-24T01:02:03.456Z".parse().unwrap();
        let lines: Vec<String> = (0..10)
            .map(|i| format_line(stamp, LogLevel::Info, &format!("line number {i}")))
            .collect();
        let all = lines.concat();
        assert_eq!(lines[0].len(), 46);
        // 100 cuts the third line; 92 ends exactly after the second.
        for (cap, expected) in [
            (
                100,
                format!("{}\n... log truncated at 100 bytes\n", &all[..100]),
            ),
            (92, format!("{}... log truncated at 92 bytes\n", &all[..92])),
        ] {
            let log = LogBuffer::new(cap);
            lines.iter().for_each(|line| log.append_raw(line));
            assert!(log.is_truncated());
            assert_eq!(log.snapshot(), expected);
            // Later text is dropped; a closing line is still kept.
            let len = log.len();
            log.append_raw("[2026-11-24T01:02:05.000Z] INFO dropped\n");
            log.append_line(LogLevel::Info, "dropped too");
            assert_eq!(log.len(), len);
            log.append_closing_line(LogLevel::Error, "Task failed: kept");
            assert!(log.snapshot().ends_with("ERROR Task failed: kept\n"));
        }
    }

    #[test]
    fn raw_text_over_the_cap_keeps_what_fits() {
        let log = LogBuffer::new(10);
        log.append_raw("0123456789abcdef\n");
        assert_eq!(
            log.snapshot(),
            "0123456789\n... log truncated at 10 bytes\n"
        );
        assert!(log.is_truncated());

        // Cut at a character boundary, never inside one.
        let log = LogBuffer::new(5);
        log.append_raw("abcé\n"); // `é` is bytes 3..5, so 5 bytes fit exactly...
        assert_eq!(log.snapshot(), "abcé\n... log truncated at 5 bytes\n");
        let log = LogBuffer::new(4);
        log.append_raw("abcé\n"); // ...and with 4 only `abc` does.
        assert_eq!(log.snapshot(), "abc\n... log truncated at 4 bytes\n");
    }

    #[test]
    fn raw_text_after_a_closing_line_past_the_cap_does_not_panic() {
        let log = LogBuffer::new(16);
        log.append_closing_line(LogLevel::Info, "Task succeeded in 1.0s");
        assert!(log.len() > 16);
        log.append_raw("late\n");
        log.append_line(LogLevel::Info, "late too");
        assert!(log.is_truncated());
        assert_eq!(log.snapshot().matches("truncated").count(), 1);
    }

    #[test]
    fn tailing_reads_only_new_text() {
        let log = LogBuffer::new(1024);
        let mut rx = log.subscribe();
        log.append_line(LogLevel::Info, "one");
        assert!(rx.has_changed().unwrap());
        let first = log.read_from(0);
        let offset = *rx.borrow_and_update();
        assert_eq!(offset, first.len());
        log.append_line(LogLevel::Info, "two");
        let next = log.read_from(offset);
        assert!(next.ends_with("INFO two\n") && !next.contains("one"));
        assert_eq!(log.read_from(usize::MAX), "");
    }
}
