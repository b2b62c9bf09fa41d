//! The `context` imports of the frozen worlds (0.2.0 and 0.1.0): the same
//! functions as 0.3.0's under their own generated types, so each one converts its
//! arguments and delegates to the 0.3.0 implementation in `host.rs`.
//!
//! 0.3.0's `connection` is theirs too: a component built before host-held secrets
//! gets a host-held connection without its password, like a new one.

use crate::bindings::Level;
use crate::bindings::v0_1::aileron::operator as v0_1;
use crate::bindings::v0_2::aileron::operator as v0_2;
use crate::bindings::v0_3::aileron::operator::context;
use crate::host::HostState;

/// One `impl` per frozen world; their `Level` enums differ only in type.
macro_rules! delegate_context {
    ($world:ident) => {
        impl $world::types::Host for HostState {}

        impl $world::context::Host for HostState {
            async fn log(
                &mut self,
                level: $world::context::Level,
                message: String,
            ) -> wasmtime::Result<()> {
                let level = match level {
                    $world::context::Level::Debug => Level::Debug,
                    $world::context::Level::Info => Level::Info,
                    $world::context::Level::Warn => Level::Warn,
                    $world::context::Level::Error => Level::Error,
                };
                context::Host::log(self, level, message).await
            }

            async fn xcom_push(
                &mut self,
                key: String,
                value: String,
            ) -> wasmtime::Result<Result<(), String>> {
                context::Host::xcom_push(self, key, value).await
            }

            async fn xcom_pull(
                &mut self,
                task_id: String,
                key: Option<String>,
            ) -> wasmtime::Result<Option<String>> {
                context::Host::xcom_pull(self, task_id, key).await
            }

            async fn variable(&mut self, key: String) -> wasmtime::Result<Option<String>> {
                context::Host::variable(self, key).await
            }

            async fn connection(
                &mut self,
                conn_id: String,
            ) -> wasmtime::Result<Result<String, String>> {
                context::Host::connection(self, conn_id).await
            }
        }
    };
}

delegate_context!(v0_2);
delegate_context!(v0_1);
