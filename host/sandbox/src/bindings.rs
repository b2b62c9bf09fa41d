//! The one place where host bindings for the operator worlds are generated: one
//! module per WIT version the host loads, and the version-neutral types the rest of
//! the crate works with.
//!
//! Every other module uses the types defined here, so the WIT interface and the
//! host can never drift apart silently: a change to `wit/operator.wit` that the host
//! does not follow is a compile error here or in `host.rs`.
//!
//! Old versions stay loadable: `wit/deps/operator@0.1.0/` and
//! `wit/deps/operator@0.2.0/` are the frozen packages, and a component built
//! against one is run through [`v0_1`] or [`v0_2`], its outcome mapped into the
//! same [`Outcome`] as a 0.3.0 component's.

/// Bindings of `aileron:operator/operator@0.3.0`, the current world.
pub(crate) mod v0_3 {
    wasmtime::component::bindgen!({
        // Relative to this crate's manifest. Each version's file alone: with both
        // packages in one resolve, every generated module would carry a version
        // suffix.
        path: "../../wit/operator.wit",
        world: "aileron:operator/operator@0.3.0",
        // Host calls may wait on the scheduler (XCom, variables, connections), so they
        // are async: a waiting guest parks its fiber instead of holding a thread. They
        // are also trappable, keeping the two error channels apart: the outer
        // `wasmtime::Result` aborts the guest, the inner WIT `result` is an answer the
        // guest handles.
        imports: { default: async | trappable },
        exports: { default: async },
    });
}

/// Bindings of `aileron:operator/operator@0.2.0`, frozen. Its `context` imports
/// delegate to the 0.3.0 implementation (`host.rs`).
pub(crate) mod v0_2 {
    wasmtime::component::bindgen!({
        path: "../../wit/deps/operator@0.2.0/operator.wit",
        world: "aileron:operator/operator@0.2.0",
        imports: { default: async | trappable },
        exports: { default: async },
    });
}

/// Bindings of `aileron:operator/operator@0.1.0`, frozen. Its `context` imports
/// delegate to the 0.3.0 implementation (`host.rs`).
pub(crate) mod v0_1 {
    wasmtime::component::bindgen!({
        path: "../../wit/deps/operator@0.1.0/operator.wit",
        world: "aileron:operator/operator@0.1.0",
        imports: { default: async | trappable },
        exports: { default: async },
    });
}

/// The world of the current version, as reported in `OperatorMeta::world`.
pub const OPERATOR_WORLD: &str = "aileron:operator/operator@0.3.0";

/// Every operator world the host loads, newest first (the order components are
/// checked in).
pub const OPERATOR_WORLDS: [&str; 3] = [
    OPERATOR_WORLD,
    "aileron:operator/operator@0.2.0",
    "aileron:operator/operator@0.1.0",
];

pub(crate) use v0_3::aileron::operator::context::{HttpRequest, HttpResponse, Level};
pub(crate) use v0_3::{OperatorInfo, Outcome, SkipScope, TaskError, TaskInfo};

/// A registered component, pre-instantiated against the world it implements.
#[derive(Clone)]
pub(crate) enum OperatorPre<T: 'static> {
    V0_3(v0_3::OperatorPre<T>),
    V0_2(v0_2::OperatorPre<T>),
    V0_1(v0_1::OperatorPre<T>),
}

impl<T: 'static> OperatorPre<T> {
    /// Picks the world by the version of the `aileron:operator` interfaces the
    /// component imports, then type-checks its exports against it. The exports
    /// (`describe`, `execute`) carry no package name and are the same in 0.2.0 and
    /// 0.3.0, so they alone cannot tell a 0.2.0 component from a 0.3.0 one. A
    /// component that imports none is checked against each world, newest first.
    /// The error is the newest world's, which is what a new component should target.
    pub(crate) fn new(pre: wasmtime::component::InstancePre<T>) -> wasmtime::Result<Self> {
        let component = pre.component();
        let imported = component
            .component_type()
            .imports(component.engine())
            .find_map(|(name, _)| {
                ["aileron:operator/context@", "aileron:operator/types@"]
                    .iter()
                    .find_map(|prefix| name.strip_prefix(prefix))
                    .map(str::to_owned)
            });
        match imported.as_deref() {
            Some("0.1.0") => return v0_1::OperatorPre::new(pre).map(OperatorPre::V0_1),
            Some("0.2.0") => return v0_2::OperatorPre::new(pre).map(OperatorPre::V0_2),
            Some(_) => return v0_3::OperatorPre::new(pre).map(OperatorPre::V0_3),
            None => {}
        }
        let newest = match v0_3::OperatorPre::new(pre.clone()) {
            Ok(pre) => return Ok(OperatorPre::V0_3(pre)),
            Err(e) => e,
        };
        v0_1::OperatorPre::new(pre)
            .map(OperatorPre::V0_1)
            .map_err(|_| newest)
    }

    /// The world the component implements, e.g. `aileron:operator/operator@0.3.0`.
    pub(crate) fn world(&self) -> &'static str {
        match self {
            OperatorPre::V0_3(_) => OPERATOR_WORLDS[0],
            OperatorPre::V0_2(_) => OPERATOR_WORLDS[1],
            OperatorPre::V0_1(_) => OPERATOR_WORLDS[2],
        }
    }
}

impl<T: Send + 'static> OperatorPre<T> {
    /// Instantiates the component in `store` and calls `describe`.
    pub(crate) async fn describe(
        &self,
        store: &mut wasmtime::Store<T>,
    ) -> wasmtime::Result<OperatorInfo> {
        // The older worlds' `operator-info` has the same fields under its own type.
        macro_rules! describe_older {
            ($pre:expr) => {{
                let operator = $pre.instantiate_async(&mut *store).await?;
                let info = operator.call_describe(store).await?;
                Ok(OperatorInfo {
                    name: info.name,
                    version: info.version,
                    description: info.description,
                    params_schema: info.params_schema,
                })
            }};
        }
        match self {
            OperatorPre::V0_3(pre) => {
                let operator = pre.instantiate_async(&mut *store).await?;
                operator.call_describe(store).await
            }
            OperatorPre::V0_2(pre) => describe_older!(pre),
            OperatorPre::V0_1(pre) => describe_older!(pre),
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
        // The older worlds' `task-info` has the same fields under its own type.
        macro_rules! info_as {
            ($version:ident) => {
                $version::TaskInfo {
                    dag_id: info.dag_id.clone(),
                    run_id: info.run_id.clone(),
                    task_id: info.task_id.clone(),
                    map_index: info.map_index,
                    try_number: info.try_number,
                    logical_date: info.logical_date.clone(),
                    data_interval_start: info.data_interval_start.clone(),
                    data_interval_end: info.data_interval_end.clone(),
                }
            };
        }
        match self {
            OperatorPre::V0_3(pre) => {
                let operator = pre.instantiate_async(&mut *store).await?;
                operator.call_execute(store, info, params).await
            }
            OperatorPre::V0_2(pre) => {
                let operator = pre.instantiate_async(&mut *store).await?;
                let result = operator
                    .call_execute(store, &info_as!(v0_2), params)
                    .await?;
                Ok(result.map(outcome_from_v0_2).map_err(|e| match e {
                    v0_2::TaskError::Failed(msg) => TaskError::Failed(msg),
                    v0_2::TaskError::Fatal(msg) => TaskError::Fatal(msg),
                }))
            }
            OperatorPre::V0_1(pre) => {
                let operator = pre.instantiate_async(&mut *store).await?;
                let result = operator
                    .call_execute(store, &info_as!(v0_1), params)
                    .await?;
                Ok(result.map(outcome_from_v0_1).map_err(|e| match e {
                    v0_1::TaskError::Failed(msg) => TaskError::Failed(msg),
                    v0_1::TaskError::Fatal(msg) => TaskError::Fatal(msg),
                }))
            }
        }
    }
}

/// 0.2.0's outcomes are 0.3.0's.
fn outcome_from_v0_2(outcome: v0_2::Outcome) -> Outcome {
    match outcome {
        v0_2::Outcome::Success(value) => Outcome::Success(value),
        v0_2::Outcome::Skip(reason) => Outcome::Skip(reason),
        v0_2::Outcome::Branch(task_ids) => Outcome::Branch(task_ids),
        v0_2::Outcome::Reschedule(seconds) => Outcome::Reschedule(seconds),
        v0_2::Outcome::SkipDownstream(v0_2::SkipScope::Direct) => {
            Outcome::SkipDownstream(SkipScope::Direct)
        }
        v0_2::Outcome::SkipDownstream(v0_2::SkipScope::All) => {
            Outcome::SkipDownstream(SkipScope::All)
        }
    }
}

/// 0.1.0's outcomes are a subset of 0.3.0's.
fn outcome_from_v0_1(outcome: v0_1::Outcome) -> Outcome {
    match outcome {
        v0_1::Outcome::Success(value) => Outcome::Success(value),
        v0_1::Outcome::Skip(reason) => Outcome::Skip(reason),
        v0_1::Outcome::Branch(task_ids) => Outcome::Branch(task_ids),
        v0_1::Outcome::Reschedule(seconds) => Outcome::Reschedule(seconds),
    }
}
