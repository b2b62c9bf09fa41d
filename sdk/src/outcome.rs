//! [`Outcome`] and [`TaskError`]: how an operator says a try ended.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::wit;

/// How a try ended when it did not fail.
///
/// Mirrors the WIT variant `outcome`; the constructors below cover the common cases.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The task succeeded; the value, if any, becomes its `return_value` XCom.
    Success(Option<Value>),
    /// The task ends `skipped`, with the reason.
    Skip(String),
    /// Only these direct downstream task ids run; the other direct downstream tasks
    /// are skipped. An empty list skips them all.
    Branch(Vec<String>),
    /// Sensor: not ready yet; poke again after this many seconds.
    Reschedule(u64),
    /// The task succeeds and short-circuits its downstream tasks (Airflow's
    /// ShortCircuitOperator). With `all`, every task downstream is skipped
    /// whatever its trigger rule (`ignore_downstream_trigger_rules=True`);
    /// otherwise only the direct downstream tasks are, and their trigger rules
    /// decide the rest. Needs a host that loads operator world 0.2.0.
    SkipDownstream {
        /// Skip every downstream task rather than only the direct ones.
        all: bool,
    },
}

impl Outcome {
    /// Success without a return value.
    pub fn success() -> Self {
        Self::Success(None)
    }

    /// Success with `value` as the task's `return_value` XCom.
    ///
    /// Takes anything `serde_json::Value` converts from (strings, numbers, bools,
    /// vectors, maps); see [`Outcome::returning_serialized`] for other types.
    pub fn returning(value: impl Into<Value>) -> Self {
        Self::Success(Some(value.into()))
    }

    /// Success with any serializable `value` as the task's `return_value` XCom.
    ///
    /// Fails (as a `failed` error) only if `value`'s `Serialize` impl fails, for
    /// example on a map with non-string keys.
    pub fn returning_serialized<T: Serialize + ?Sized>(value: &T) -> Result<Self, TaskError> {
        Ok(Self::Success(Some(serde_json::to_value(value)?)))
    }

    /// The task ends `skipped` because of `reason`.
    pub fn skip(reason: impl Into<String>) -> Self {
        Self::Skip(reason.into())
    }

    /// Follow only `task_ids` among the direct downstream tasks.
    pub fn branch<I, S>(task_ids: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::Branch(task_ids.into_iter().map(Into::into).collect())
    }

    /// Success that skips the downstream tasks: all of them whatever their trigger
    /// rules when `all` is true (Airflow's `ignore_downstream_trigger_rules=True`),
    /// else only the direct ones. See [`Outcome::SkipDownstream`].
    pub fn skip_downstream(all: bool) -> Self {
        Self::SkipDownstream { all }
    }

    /// Sensor: poke again after `delay`, rounded up to whole seconds so that a
    /// sub-second delay still waits rather than spinning.
    pub fn reschedule(delay: Duration) -> Self {
        let seconds = delay.as_secs() + u64::from(delay.subsec_nanos() > 0);
        Self::Reschedule(seconds)
    }
}

impl From<Outcome> for wit::Outcome {
    fn from(outcome: Outcome) -> Self {
        match outcome {
            // `Value`'s `Display` is its compact JSON text and cannot fail.
            Outcome::Success(value) => Self::Success(value.map(|value| value.to_string())),
            Outcome::Skip(reason) => Self::Skip(reason),
            Outcome::Branch(task_ids) => Self::Branch(task_ids),
            Outcome::Reschedule(seconds) => Self::Reschedule(seconds),
            Outcome::SkipDownstream { all } => Self::SkipDownstream(if all {
                wit::SkipScope::All
            } else {
                wit::SkipScope::Direct
            }),
        }
    }
}

/// How a try failed.
///
/// `?` converts every error type into [`TaskError::Failed`] with the error's message
/// and its `source()` chain, so a try that hit a transient problem is retried while
/// retries remain. Use [`TaskError::fatal`] (or [`TaskResultExt::fatal`]) when
/// retrying cannot help, for example on invalid input.
///
/// Like `anyhow::Error`, `TaskError` deliberately does not implement
/// `std::error::Error`: that is what lets it convert from every type that does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskError {
    /// Retried while the task has retries left.
    Failed(String),
    /// Never retried: the TaskInstance fails at once.
    Fatal(String),
}

impl TaskError {
    /// A failure that a retry may fix.
    pub fn failed(message: impl Into<String>) -> Self {
        Self::Failed(message.into())
    }

    /// A failure that no retry can fix.
    pub fn fatal(message: impl Into<String>) -> Self {
        Self::Fatal(message.into())
    }

    /// The message, whatever the kind.
    pub fn message(&self) -> &str {
        match self {
            Self::Failed(message) | Self::Fatal(message) => message,
        }
    }

    /// Whether the TaskInstance fails without further retries.
    pub fn is_fatal(&self) -> bool {
        matches!(self, Self::Fatal(_))
    }

    /// The same message, as a fatal error.
    pub fn into_fatal(self) -> Self {
        match self {
            Self::Failed(message) | Self::Fatal(message) => Self::Fatal(message),
        }
    }

    /// Prefixes the message with `context`, keeping the kind.
    pub fn context(self, context: impl fmt::Display) -> Self {
        match self {
            Self::Failed(message) => Self::Failed(format!("{context}: {message}")),
            Self::Fatal(message) => Self::Fatal(format!("{context}: {message}")),
        }
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl<E: StdError> From<E> for TaskError {
    fn from(error: E) -> Self {
        // Errors in this ecosystem keep their cause in `source()` rather than in
        // their own message, so the chain is what tells the whole story.
        let mut message = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        Self::Failed(message)
    }
}

impl From<TaskError> for wit::TaskError {
    fn from(error: TaskError) -> Self {
        match error {
            TaskError::Failed(message) => Self::Failed(message),
            TaskError::Fatal(message) => Self::Fatal(message),
        }
    }
}

/// Turns any error into a [`TaskError`] on the spot, with a kind or a context.
///
/// Implemented for every `Result` whose error converts into `TaskError`, which is
/// every `std::error::Error` and `TaskError` itself.
///
/// ```
/// use aileron_sdk::prelude::*;
///
/// fn port(text: &str) -> Result<u16, TaskError> {
///     text.parse::<u16>().context(format!("port `{text}`")).fatal()
/// }
///
/// let error = port("http").unwrap_err();
/// assert!(error.is_fatal());
/// assert_eq!(error.message(), "port `http`: invalid digit found in string");
/// ```
pub trait TaskResultExt<T> {
    /// Marks the error as fatal: the TaskInstance fails without retrying.
    fn fatal(self) -> Result<T, TaskError>;

    /// Prefixes the error's message with `context`, keeping its kind.
    fn context(self, context: impl fmt::Display) -> Result<T, TaskError>;
}

impl<T, E: Into<TaskError>> TaskResultExt<T> for Result<T, E> {
    fn fatal(self) -> Result<T, TaskError> {
        self.map_err(|error| error.into().into_fatal())
    }

    fn context(self, context: impl fmt::Display) -> Result<T, TaskError> {
        self.map_err(|error| error.into().context(context))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Outer(std::io::Error);

    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("could not fetch")
        }
    }

    impl StdError for Outer {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn question_mark_turns_errors_into_failed_with_their_chain() {
        fn fetch() -> Result<(), TaskError> {
            Err(Outer(std::io::Error::other("connection reset")))?;
            Ok(())
        }
        assert_eq!(
            fetch(),
            Err(TaskError::failed("could not fetch: connection reset"))
        );
    }

    #[test]
    fn serde_json_errors_convert_to_failed() {
        fn parse() -> Result<Value, TaskError> {
            Ok(serde_json::from_str("{")?)
        }
        let error = parse().unwrap_err();
        assert!(!error.is_fatal());
        assert!(error.message().contains("EOF"), "{error}");
    }

    #[test]
    fn extension_methods_keep_or_change_the_kind() {
        let fatal: Result<(), TaskError> = Err(TaskError::fatal("bad url"));
        assert_eq!(
            fatal.context("task `x`"),
            Err(TaskError::fatal("task `x`: bad url"))
        );
        let failed: Result<(), TaskError> = Err(TaskError::failed("timeout"));
        assert_eq!(failed.fatal(), Err(TaskError::fatal("timeout")));
    }

    #[test]
    fn constructors_build_the_matching_variants() {
        assert_eq!(Outcome::success(), Outcome::Success(None));
        assert_eq!(
            Outcome::returning("hi"),
            Outcome::Success(Some(Value::from("hi")))
        );
        assert_eq!(
            Outcome::returning_serialized(&[1, 2]).unwrap(),
            Outcome::Success(Some(serde_json::json!([1, 2])))
        );
        assert_eq!(Outcome::skip("no data"), Outcome::Skip("no data".into()));
        assert_eq!(
            Outcome::branch(["a", "b"]),
            Outcome::Branch(vec!["a".into(), "b".into()])
        );
        assert_eq!(
            Outcome::reschedule(Duration::from_millis(1500)),
            Outcome::Reschedule(2)
        );
        assert_eq!(
            Outcome::reschedule(Duration::from_secs(30)),
            Outcome::Reschedule(30)
        );
        assert_eq!(
            Outcome::skip_downstream(true),
            Outcome::SkipDownstream { all: true }
        );
    }

    #[test]
    fn skip_downstream_crosses_the_boundary_with_its_scope() {
        assert!(matches!(
            wit::Outcome::from(Outcome::skip_downstream(true)),
            wit::Outcome::SkipDownstream(wit::SkipScope::All)
        ));
        assert!(matches!(
            wit::Outcome::from(Outcome::skip_downstream(false)),
            wit::Outcome::SkipDownstream(wit::SkipScope::Direct)
        ));
    }

    #[test]
    fn success_values_cross_the_boundary_as_compact_json() {
        let wit = wit::Outcome::from(Outcome::returning(serde_json::json!({"a": [1, "b"]})));
        match wit {
            wit::Outcome::Success(Some(json)) => assert_eq!(json, r#"{"a":[1,"b"]}"#),
            other => panic!("unexpected {other:?}"),
        }
    }
}
