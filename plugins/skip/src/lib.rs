//! `skip`: ends its task `skipped`, to exercise how skips propagate downstream.

use aileron_sdk::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
struct Params {
    /// Why the task is skipped.
    reason: String,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            reason: "skipped on purpose".to_owned(),
        }
    }
}

/// Ends the task `skipped`, with `reason`.
#[operator(name = "skip", version = "0.1.0")]
fn skip(ctx: &TaskContext, params: Params) -> Result<Outcome, TaskError> {
    info!(ctx, "skipping: {}", params.reason);
    Ok(Outcome::skip(params.reason))
}

#[cfg(test)]
mod tests {
    use aileron_sdk::testing::TestHost;

    use super::*;

    #[test]
    fn skips_with_the_reason_or_a_default() {
        let host = TestHost::new();
        assert_eq!(
            host.run(TaskInfo::default(), r#"{"reason": "holiday"}"#, skip),
            Ok(Outcome::skip("holiday"))
        );
        assert_eq!(
            host.run(TaskInfo::default(), "{}", skip),
            Ok(Outcome::skip("skipped on purpose"))
        );
    }
}
