//! The one place where host bindings for the operator world are generated.
//!
//! Every other module uses the types generated here, so the WIT interface and the
//! host can never drift apart silently: a change to `wit/operator.wit` that the host
//! does not follow is a compile error in `host.rs` or `run.rs`.

wasmtime::component::bindgen!({
    // Relative to this crate's manifest: the workspace's `wit/` folder.
    path: "../../wit",
    world: "aileron:operator/operator@0.1.0",
    // Host calls may wait on the scheduler (XCom, variables, connections), so they
    // are async: a waiting guest parks its fiber instead of holding a thread. They
    // are also trappable, keeping the two error channels apart: the outer
    // `wasmtime::Result` aborts the guest, the inner WIT `result` is an answer the
    // guest handles.
    imports: { default: async | trappable },
    exports: { default: async },
});

/// The world every operator targets, as reported in `OperatorMeta::world`.
pub const OPERATOR_WORLD: &str = "aileron:operator/operator@0.1.0";

pub use aileron::operator::context::Level;
// The world's `use types.{…}` already brings `OperatorInfo`, `Outcome`, `TaskError` and
// `TaskInfo` into this module.
