//! The worker's side of shared memory quotas: a capped tenant's growth past
//! what this worker holds of its `max_memory` asks the scheduler's ledger
//! through the execution API (`PUT /workers/{id}/memory`).

use aileron_protocol::wire::MemoryHoldRequest;
use aileron_sandbox::{Held, HoldFuture, HoldRequest, LedgerUnreachable, MemoryLedger};

use crate::api::Api;

/// The scheduler's ledger, a request away.
pub(crate) struct SchedulerLedger {
    pub(crate) api: Api,
}

impl MemoryLedger for SchedulerLedger {
    fn hold<'a>(&'a self, r: HoldRequest<'a>) -> HoldFuture<'a> {
        Box::pin(async move {
            let request = MemoryHoldRequest {
                tenant: r.tenant.to_owned(),
                cap: r.cap,
                need: r.need,
                want: r.want,
            };
            // Any failure, a refusal of the request included (an older
            // scheduler, or one that does not know this worker yet), leaves
            // the decision to the worker: the growth must not wait for a
            // registration.
            let answer = self
                .api
                .memory_hold(&request)
                .await
                .map_err(|e| LedgerUnreachable(e.to_string()))?;
            Ok(match answer.granted {
                Some(bytes) => Held::Granted {
                    bytes,
                    tight: answer.tight,
                },
                None => Held::Refused {
                    others: answer.others,
                },
            })
        })
    }
}
