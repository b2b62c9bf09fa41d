//! Write Aileron operators in Rust: one function, one attribute.
//!
//! An Aileron operator is a WebAssembly component that implements the
//! `aileron:operator` WIT world: the host calls `describe` once when it loads the
//! component and `execute` once per TaskInstance try, each time in a fresh sandbox.
//! This crate hides the generated bindings behind a few typed wrappers and the
//! [`#[operator]`](operator) attribute, so an operator is a plain Rust function.
//!
//! # An operator
//!
//! ```
//! use aileron_sdk::prelude::*;
//! use serde::Deserialize;
//!
//! #[derive(Deserialize, JsonSchema)]
//! #[serde(deny_unknown_fields)]
//! struct Params {
//!     /// The text to log and return.
//!     message: String,
//! }
//!
//! /// Logs the message and returns it.
//! #[operator(name = "echo", version = "0.1.0")]
//! fn echo(ctx: &TaskContext, params: Params) -> Result<Outcome, TaskError> {
//!     ctx.info(&params.message);
//!     Ok(Outcome::returning(params.message))
//! }
//! # fn main() {}
//! ```
//!
//! Build it as a component with a `cdylib` crate and the `wasm32-wasip2` target; no
//! other tool is needed:
//!
//! ```toml
//! [lib]
//! crate-type = ["cdylib"]
//!
//! [dependencies]
//! aileron-sdk = "0.1"
//! serde = { version = "1", features = ["derive"] }
//! ```
//!
//! ```text
//! cargo build --release --target wasm32-wasip2
//! aileron plugins add target/wasm32-wasip2/release/my_operator.wasm
//! ```
//!
//! # The `#[operator]` attribute
//!
//! Arguments:
//! - `name` (required): what DAG files write as `operator = "echo"`; lowercase
//!   ASCII letters, digits, `-`, `_` and `.`.
//! - `version`: semver, which DAGs may pin as `"echo@0.1.0"`; defaults to the
//!   crate's version.
//! - `description`: defaults to the function's doc comment.
//! - `params_schema`: the JSON Schema the host validates the task's `params`
//!   against before running it. By default it is derived from the params type,
//!   which must then implement `JsonSchema` (`#[derive(JsonSchema)]`, in the
//!   prelude: doc comments become descriptions, `#[serde(deny_unknown_fields)]`
//!   becomes `"additionalProperties": false`, `#[schemars(range(min = 0))]`
//!   bounds a number), so the schema and the code cannot drift; for params taken
//!   as a `serde_json::Value`, or none, it is `{"type":"object"}`. Written by
//!   hand, it must be valid JSON, which is checked while compiling.
//!
//! The function takes `&TaskContext` and, optionally, its params as any type that
//! implements `serde::Deserialize` (use `serde_json::Value` to take them as they
//! come), and returns `Result<Outcome, TaskError>`. Params that do not deserialize
//! end the try with a [`TaskError::Fatal`] naming the field (retrying the same
//! params cannot help), for example:
//!
//! ```text
//! invalid params at `seconds`: invalid type: string "5", expected f64
//! ```
//!
//! A component holds exactly one operator, so a crate uses `#[operator]` once.
//!
//! A signature the attribute cannot export is a compile error pointing at the
//! offending part. A function without the result type:
//!
//! ```compile_fail
//! use aileron_sdk::prelude::*;
//!
//! #[operator(name = "noop")]
//! fn noop(ctx: &TaskContext) -> Outcome {
//!     Outcome::success()
//! }
//! # fn main() {}
//! ```
//!
//! A function with too many arguments:
//!
//! ```compile_fail
//! use aileron_sdk::prelude::*;
//!
//! #[operator(name = "add")]
//! fn add(ctx: &TaskContext, a: u32, b: u32) -> Result<Outcome, TaskError> {
//!     Ok(Outcome::returning(a + b))
//! }
//! # fn main() {}
//! ```
//!
//! A missing name:
//!
//! ```compile_fail
//! use aileron_sdk::prelude::*;
//!
//! #[operator(version = "0.1.0")]
//! fn unnamed(ctx: &TaskContext) -> Result<Outcome, TaskError> {
//!     Ok(Outcome::success())
//! }
//! # fn main() {}
//! ```
//!
//! A params type that cannot be deserialized:
//!
//! ```compile_fail
//! use aileron_sdk::prelude::*;
//!
//! struct Params;
//!
//! #[operator(name = "typed")]
//! fn typed(ctx: &TaskContext, params: Params) -> Result<Outcome, TaskError> {
//!     Ok(Outcome::success())
//! }
//! # fn main() {}
//! ```
//!
//! # Host services
//!
//! [`TaskContext`] carries the [`TaskInfo`] of the try and the host calls, all
//! checked and metered by the host for this one try:
//! [`log`](TaskContext::log) (and the [`debug!`], [`info!`], [`warn!`], [`error!`]
//! macros), [`xcom_push`](TaskContext::xcom_push),
//! [`xcom_pull`](TaskContext::xcom_pull), [`variable`](TaskContext::variable),
//! [`connection`](TaskContext::connection), and outbound HTTP:
//! [`http`](TaskContext::http) to the hosts in the task's `allow_hosts`, and
//! [`http_with_connection`](TaskContext::http_with_connection) with a
//! connection's credential added by the host. Standard output and standard error
//! are captured into the try's log too.
//!
//! `ctx.http` is plain `wasi:http/outgoing-handler`, so any HTTP client built on
//! it works the same; a request the host refuses ends with the error code
//! `HTTP-request-denied` (not in `allow_hosts`) or `destination-IP-prohibited`
//! (the name resolves to a private address).
//!
//! # Outcomes and errors
//!
//! [`Outcome`] says how a try ended when it did not fail: success (optionally with
//! a return value, stored as the `return_value` XCom), skip, branch, reschedule,
//! or success that skips the downstream tasks ([`Outcome::skip_downstream`], Airflow's
//! short-circuit).
//! [`TaskError`] says how it failed: `Failed` is retried while retries remain,
//! `Fatal` never is. `?` converts any `std::error::Error` into `Failed`;
//! [`TaskResultExt`] adds `.fatal()` and `.context(..)` to results.
//!
//! # Testing an operator
//!
//! The operator function is an ordinary function, so `cargo test` on the build
//! machine can call it with a context from [`testing::TestHost`], which records log
//! lines and XComs in memory:
//!
//! ```
//! # use aileron_sdk::prelude::*;
//! # #[derive(serde::Deserialize, JsonSchema)]
//! # struct Params { message: String }
//! # /// Logs the message and returns it.
//! # #[operator(name = "echo")]
//! # fn echo(ctx: &TaskContext, params: Params) -> Result<Outcome, TaskError> {
//! #     ctx.info(&params.message);
//! #     Ok(Outcome::returning(params.message))
//! # }
//! use aileron_sdk::testing::TestHost;
//!
//! # fn main() {
//! let host = TestHost::new();
//! let outcome = host.run(TaskInfo::default(), r#"{"message": "hi"}"#, echo);
//! assert_eq!(outcome, Ok(Outcome::returning("hi")));
//! assert_eq!(host.logs(), [(Level::Info, "hi".to_owned())]);
//!
//! let missing = host.run(TaskInfo::default(), "{}", echo);
//! assert_eq!(missing, Err(TaskError::fatal("invalid params: missing field `message`")));
//! # }
//! ```

// Lets the generated bindings and the macro's expansion name this crate as
// `::aileron_sdk` from inside it as well as from operator crates.
extern crate self as aileron_sdk;

mod connection;
mod context;
mod host;
mod http;
mod log;
mod outcome;
mod task_info;
pub mod testing;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

pub use aileron_sdk_macros::operator;
pub use connection::{Connection, ConnectionError};
pub use context::{RETURN_VALUE_KEY, TaskContext, XComError};
pub use http::{FetchError, FetchErrorKind, HttpError, Request, Response};
pub use log::Level;
pub use outcome::{Outcome, TaskError, TaskResultExt};
/// The `schemars` whose [`JsonSchema`](schemars::JsonSchema) derive gives
/// `#[operator]` the params schema; the prelude brings it into scope, so
/// `#[derive(JsonSchema)]` works without a dependency of the operator's own.
#[doc(no_inline)]
pub use schemars;
/// The `serde_json` the SDK's types use ([`Outcome::Success`] holds a
/// `serde_json::Value`), so operators need not pin a matching version themselves.
#[doc(no_inline)]
pub use serde_json;
pub use task_info::TaskInfo;

/// The bindings wit-bindgen generates for `wit/operator.wit`: operator world 0.3.0
/// (hosts that load 0.3.0 also load components built against 0.2.0 and 0.1.0).
///
/// Not a public API: the wrappers above are. Public only because the
/// `#[operator]` expansion in operator crates implements `wit::Guest` and calls
/// `wit::export!`.
#[doc(hidden)]
pub mod wit {
    #![allow(missing_docs)]

    wit_bindgen::generate!({
        world: "operator",
        // Relative to this crate's manifest: the current WIT package of the
        // repository (the file alone: `wit/deps/` holds the frozen older versions,
        // which would otherwise put a version suffix on every module name).
        path: "../wit/operator.wit",
        runtime_path: "::aileron_sdk::__private::wit_bindgen::rt",
        // The export macro is invoked from operator crates, so it must be public and
        // find the bindings through this crate's path.
        pub_export_macro: true,
        default_bindings_module: "::aileron_sdk::wit",
    });
}

/// Everything an operator function needs: `use aileron_sdk::prelude::*;`.
pub mod prelude {
    pub use crate::{
        Connection, FetchError, FetchErrorKind, Level, Outcome, Request, Response, TaskContext,
        TaskError, TaskInfo, TaskResultExt, operator,
    };
    // The derive's expansion names `schemars::…`, which this brings into scope.
    pub use crate::schemars::{self, JsonSchema};
    pub use crate::{debug, error, info, warn};
}
