//! Guest stdout and stderr, streamed line by line into the try's [`LogBuffer`].

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

use crate::log::{LogBuffer, LogLevel};

/// A line longer than this is logged in pieces: without a bound, a guest writing
/// without newlines would make the host buffer unboundedly. 16 KiB keeps any
/// realistic line (a JSON document, a stack frame) whole.
const MAX_PENDING_LINE: usize = 16 << 10;

/// How much the guest may hand over per write. WASI streams advertise about this
/// much; a larger permit would let one `write` call make the host allocate more.
const WRITE_PERMIT: usize = 64 << 10;

/// The end of stderr kept aside even after the log is full, so that a panic
/// message printed just before a trap can still name the failure. 4 KiB holds a
/// Rust panic message with room to spare.
const STDERR_TAIL: usize = 4 << 10;

/// One of the guest's output streams. Cheap to clone: clones share the pending
/// partial line, so the WASI p2 and p3 views of the stream stay in order.
#[derive(Clone)]
pub(crate) struct GuestOutput {
    inner: Arc<Inner>,
}

struct Inner {
    log: Arc<LogBuffer>,
    level: LogLevel,
    state: Mutex<Pending>,
}

#[derive(Default)]
struct Pending {
    /// Bytes after the last newline, waiting for the rest of their line.
    partial: Vec<u8>,
    /// The last bytes written (kept only for stderr).
    tail: Vec<u8>,
}

impl GuestOutput {
    pub(crate) fn new(log: Arc<LogBuffer>, level: LogLevel) -> Self {
        GuestOutput {
            inner: Arc::new(Inner {
                log,
                level,
                state: Mutex::new(Pending::default()),
            }),
        }
    }

    /// Takes bytes from the guest: complete lines go to the log at once, so a
    /// running task's output can be tailed.
    fn push(&self, bytes: &[u8]) {
        let mut pending = self.lock();
        if self.inner.level == LogLevel::Stderr {
            pending.tail.extend_from_slice(bytes);
            if pending.tail.len() > STDERR_TAIL {
                let excess = pending.tail.len() - STDERR_TAIL;
                pending.tail.drain(..excess);
            }
        }
        if self.inner.log.is_truncated() {
            // Nothing more will be kept; don't spend time splitting lines.
            pending.partial.clear();
            return;
        }
        let mut rest = bytes;
        while let Some(newline) = rest.iter().position(|&b| b == b'\n') {
            let (line, after) = rest.split_at(newline);
            if pending.partial.is_empty() {
                self.emit(line);
            } else {
                pending.partial.extend_from_slice(line);
                let whole = std::mem::take(&mut pending.partial);
                self.emit(&whole);
            }
            rest = &after[1..];
        }
        pending.partial.extend_from_slice(rest);
        while pending.partial.len() >= MAX_PENDING_LINE {
            let piece: Vec<u8> = pending.partial.drain(..MAX_PENDING_LINE).collect();
            self.emit(&piece);
        }
    }

    /// Logs what is left of an unfinished last line; called when the try ends.
    pub(crate) fn finish(&self) {
        let partial = std::mem::take(&mut self.lock().partial);
        if !partial.is_empty() {
            self.emit(&partial);
        }
    }

    /// The last bytes the guest wrote (stderr only), as text.
    pub(crate) fn tail(&self) -> String {
        String::from_utf8_lossy(&self.lock().tail).into_owned()
    }

    fn emit(&self, line: &[u8]) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        self.inner
            .log
            .append_line(self.inner.level, &String::from_utf8_lossy(line));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[async_trait::async_trait]
impl Pollable for GuestOutput {
    /// Always ready: writes land in memory and never wait.
    async fn ready(&mut self) {}
}

impl OutputStream for GuestOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_PERMIT)
    }
}

impl AsyncWrite for GuestOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(log: &LogBuffer) -> Vec<String> {
        log.snapshot()
            .lines()
            .map(|l| l.split_once("] ").unwrap().1.to_owned())
            .collect()
    }

    #[test]
    fn splits_lines_across_writes() {
        let log = Arc::new(LogBuffer::new(4096));
        let out = GuestOutput::new(log.clone(), LogLevel::Stdout);
        out.push(b"hel");
        out.push(b"lo\nwor");
        out.push(b"ld\r\nlast");
        assert_eq!(lines(&log), ["STDOUT hello", "STDOUT world"]);
        out.finish();
        assert_eq!(lines(&log), ["STDOUT hello", "STDOUT world", "STDOUT last"]);
    }

    #[test]
    fn long_lines_are_cut_into_pieces() {
        let log = Arc::new(LogBuffer::new(1 << 20));
        let out = GuestOutput::new(log.clone(), LogLevel::Stdout);
        out.push(&vec![b'x'; MAX_PENDING_LINE * 2 + 10]);
        assert_eq!(lines(&log).len(), 2);
        out.finish();
        assert_eq!(lines(&log).len(), 3);
    }

    #[test]
    fn stderr_keeps_a_tail_after_the_log_is_full() {
        let log = Arc::new(LogBuffer::new(64));
        let err = GuestOutput::new(log.clone(), LogLevel::Stderr);
        for _ in 0..100 {
            err.push(b"noise noise noise\n");
        }
        err.push(b"panicked at the end\n");
        assert!(log.is_truncated());
        assert!(err.tail().ends_with("panicked at the end\n"));
        assert!(err.tail().len() <= STDERR_TAIL);
    }
}
