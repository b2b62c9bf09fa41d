//! The one place where host bindings for the operator worlds are generated: one
//! module per WIT version the host loads, and the version-neutral types the rest of
//! the crate works with.
//!
//! Every other module uses the types defined here, so the WIT interface and the
//! host can never drift apart silently: a change to `wit/operator.wit` that the host
//! does not follow is a compile error here or in `host.rs`.
//!
//! Old versions stay loadable: `wit/deps/operator@0.1.0/` is the frozen 0.1.0
//! package, and a component built against it is run through [`v0_1`], its outcome
//! mapped into the same [`Outcome`] as a 0.2.0 component's.

/// Bindings of `aileron:operator/operator@0.2.0`, the current world.
pub(crate) mod v0_2 {
    wasmtime::component::bindgen!({
        // Relative to this crate's manifest. Each version's file alone: with both
        // packages in one resolve, every generated module would carry a version
        // suffix.
        path: "../../wit/operator.wit",
        world: "aileron:operator/operator@0.2.0",
        // Host calls may wait on the scheduler (XCom, variables, connections), so they
        // are async: a waiting guest parks its fiber instead of holding a thread. They
        // are also trappable, keeping the two error channels apart: the outer
        // `wasmtime::Result` aborts the guest, the inner WIT `result` is an answer the
        // guest handles.
        imports: { default: async | trappable },
        exports: { default: async },
    });
}

/// Bindings of `aileron:operator/operator@0.1.0`, frozen. Its `context` imports
/// delegate to the 0.2.0 implementation (`host.rs`).
pub(crate) mod v0_1 {
    wasmtime::component::bindgen!({
        path: "../../wit/deps/operator@0.1.0/operator.wit",
        world: "aileron:operator/operator@0.1.0",
        imports: { default: async | trappable },
        exports: { default: async },
    });
}

/// The world of the current version, as reported in `OperatorMeta::world`.
pub const OPERATOR_WORLD: &str = "aileron:operator/operator@0.2.0";

/// Every operator world the host loads, newest first (the order components are
/// checked in).
pub const OPERATOR_WORLDS: [&str; 2] = [OPERATOR_WORLD, "aileron:operator/operator@0.1.0"];

pub(crate) use v0_2::aileron::operator::context::Level;
pub(crate) use v0_2::{OperatorInfo, Outcome, SkipScope, TaskError, TaskInfo};

/// A registered component, pre-instantiated against the world it implements.
#[derive(Clone)]
pub(crate) enum OperatorPre<T: 'static> {
    V0_2(v0_2::OperatorPre<T>),
    V0_1(v0_1::OperatorPre<T>),
}

impl<T: 'static> OperatorPre<T> {
    /// Type-checks the component's exports against each world, newest first. The
    /// worlds differ in `execute`'s result type, so at most one fits; the error is
    /// the newest world's, which is what a new component should target.
    pub(crate) fn new(pre: wasmtime::component::InstancePre<T>) -> wasmtime::Result<Self> {
        match v0_2::OperatorPre::new(pre.clone()) {
            Ok(pre) => Ok(OperatorPre::V0_2(pre)),
            Err(newest) => v0_1::OperatorPre::new(pre)
                .map(OperatorPre::V0_1)
                .map_err(|_| newest),
        }
    }

    /// The world the component implements, e.g. `aileron:operator/operator@0.2.0`.
    pub(crate) fn world(&self) -> &'static str {
        match self {
            OperatorPre::V0_2(_) => OPERATOR_WORLDS[0],
            OperatorPre::V0_1(_) => OPERATOR_WORLDS[1],
        }
    }
}

impl<T: Send + 'static> OperatorPre<T> {
    /// Instantiates the component in `store` and calls `describe`.
    pub(crate) async fn describe(
        &self,
        store: &mut wasmtime::Store<T>,
    ) -> wasmtime::Result<OperatorInfo> {
        match self {
            OperatorPre::V0_2(pre) => {
                let operator = pre.instantiate_async(&mut *store).await?;
                operator.call_describe(store).await
            }
            OperatorPre::V0_1(pre) => {
                let operator = pre.instantiate_async(&mut *store).await?;
                let info = operator.call_describe(store).await?;
                Ok(OperatorInfo {
                    name: info.name,
                    version: info.version,
                    description: info.description,
                    params_schema: info.params_schema,
                })
            }
        }
    }

    /// Instantiates the component in `store` and calls `execute`.
    #[allow(
        clippy::ptr_arg,
        reason = "the generated `call_execute` takes `&String`"
    )]
    pub(crate) async fn execute(
        &self,
        store: &mut wasmtime::Store<T>,
        info: &TaskInfo,
        params: &String,
    ) -> wasmtime::Result<Result<Outcome, TaskError>> {
        match self {
            OperatorPre::V0_2(pre) => {
                let operator = pre.instantiate_async(&mut *store).await?;
                operator.call_execute(store, info, params).await
            }
            OperatorPre::V0_1(pre) => {
                let operator = pre.instantiate_async(&mut *store).await?;
                let info = v0_1::TaskInfo {
                    dag_id: info.dag_id.clone(),
                    run_id: info.run_id.clone(),
                    task_id: info.task_id.clone(),
                    map_index: info.map_index,
                    try_number: info.try_number,
                    logical_date: info.logical_date.clone(),
                    data_interval_start: info.data_interval_start.clone(),
                    data_interval_end: info.data_interval_end.clone(),
                };
                let result = operator.call_execute(store, &info, params).await?;
                Ok(result.map(outcome_from_v0_1).map_err(|e| match e {
                    v0_1::TaskError::Failed(msg) => TaskError::Failed(msg),
                    v0_1::TaskError::Fatal(msg) => TaskError::Fatal(msg),
                }))
            }
        }
    }
}

/// 0.1.0's outcomes are a subset of 0.2.0's.
fn outcome_from_v0_1(outcome: v0_1::Outcome) -> Outcome {
    match outcome {
        v0_1::Outcome::Success(value) => Outcome::Success(value),
        v0_1::Outcome::Skip(reason) => Outcome::Skip(reason),
        v0_1::Outcome::Branch(task_ids) => Outcome::Branch(task_ids),
        v0_1::Outcome::Reschedule(seconds) => Outcome::Reschedule(seconds),
    }
}
