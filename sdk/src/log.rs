//! Log levels and the `debug!`/`info!`/`warn!`/`error!` macros that format a line
//! into a TaskInstance try's log.

use crate::wit::aileron::operator::context as host;

/// Severity of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Level {
    /// Detail for whoever debugs the operator.
    Debug,
    /// Normal progress.
    Info,
    /// Something unexpected that the operator worked around.
    Warn,
    /// Something went wrong.
    Error,
}

impl From<Level> for host::Level {
    fn from(level: Level) -> Self {
        match level {
            Level::Debug => Self::Debug,
            Level::Info => Self::Info,
            Level::Warn => Self::Warn,
            Level::Error => Self::Error,
        }
    }
}

/// Formats a line into the try's log at [`Level::Debug`]:
/// `debug!(ctx, "read {} rows", rows.len())`.
#[macro_export]
macro_rules! debug {
    ($ctx:expr, $($arg:tt)+) => {
        $ctx.log($crate::Level::Debug, ::std::format!($($arg)+))
    };
}

/// Formats a line into the try's log at [`Level::Info`]:
/// `info!(ctx, "wrote {path}")`.
#[macro_export]
macro_rules! info {
    ($ctx:expr, $($arg:tt)+) => {
        $ctx.log($crate::Level::Info, ::std::format!($($arg)+))
    };
}

/// Formats a line into the try's log at [`Level::Warn`]:
/// `warn!(ctx, "retrying {url}")`.
#[macro_export]
macro_rules! warn {
    ($ctx:expr, $($arg:tt)+) => {
        $ctx.log($crate::Level::Warn, ::std::format!($($arg)+))
    };
}

/// Formats a line into the try's log at [`Level::Error`]:
/// `error!(ctx, "giving up on {url}")`.
#[macro_export]
macro_rules! error {
    ($ctx:expr, $($arg:tt)+) => {
        $ctx.log($crate::Level::Error, ::std::format!($($arg)+))
    };
}
