//! Operator components on a worker (`docs/design/multi-node.md` §4.3): a try's
//! component is looked up in the local registry and, when missing, downloaded
//! from the scheduler once per digest, checked against its digest and installed
//! into `HOME/plugins/store/`, where the next start finds it without a download.

use super::api::{Api, Failure};
use aileron_protocol::backoff::Backoff;
use aileron_sandbox::{MAX_COMPONENT_BYTES, Registry};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Why a component cannot be had. Each of these is final for the digest: the try
/// then runs without it and fails with the sandbox's "not registered" reason,
/// after this one in its log.
#[derive(Debug, thiserror::Error)]
pub enum ComponentError {
    #[error("`{0}` is not a component digest (sha256:<64 hex digits>)")]
    BadDigest(String),
    #[error("the scheduler has no component {0}")]
    Unknown(String),
    #[error("the scheduler refused to send component {digest}: {failure}")]
    Refused { digest: String, failure: Failure },
    #[error("the component downloaded for {expected} has digest {actual}")]
    Mismatch { expected: String, actual: String },
    #[error("component {digest} cannot be installed: {reason}")]
    Install { digest: String, reason: String },
}

/// Whether `digest` is `sha256:` and 64 lower-case hex digits, the only form
/// the registry produces; checked before it goes into a URL or a file name.
pub fn valid_digest(digest: &str) -> bool {
    digest.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

/// Checks that `bytes` are the component named by `digest`: whoever serves them
/// is not trusted to have sent the right ones.
pub fn verify(digest: &str, bytes: &[u8]) -> Result<(), ComponentError> {
    let actual = format!("sha256:{}", hex::encode(Sha256::digest(bytes)));
    if actual == digest {
        Ok(())
    } else {
        Err(ComponentError::Mismatch {
            expected: digest.to_owned(),
            actual,
        })
    }
}

/// The components of one worker.
pub struct Components {
    registry: Registry,
    /// `HOME/plugins`.
    plugins: PathBuf,
    api: Api,
    /// One lock per digest being fetched, so concurrent tries of a new component
    /// wait for one download instead of each making their own.
    fetching: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Components {
    pub fn new(registry: Registry, plugins: PathBuf, api: Api) -> Self {
        Components {
            registry,
            plugins,
            api,
            fetching: Mutex::new(HashMap::new()),
        }
    }

    /// Makes sure the component `digest` is registered, downloading it if needed.
    /// A scheduler that cannot be reached is waited for, with backoff: the try
    /// cannot run without its component, and its stream entry is kept alive
    /// meanwhile. `Err` only for reasons that waiting cannot fix.
    pub async fn ensure(&self, digest: &str) -> Result<(), ComponentError> {
        if self.registry.get(digest).is_some() {
            return Ok(());
        }
        if !valid_digest(digest) {
            return Err(ComponentError::BadDigest(digest.to_owned()));
        }
        let lock = {
            let mut fetching = self.fetching.lock().unwrap_or_else(|e| e.into_inner());
            fetching.entry(digest.to_owned()).or_default().clone()
        };
        let _turn = lock.lock().await;
        // Whoever held the lock before may have installed it.
        if self.registry.get(digest).is_some() {
            return Ok(());
        }
        let mut backoff = Backoff::new();
        let bytes = loop {
            match self.api.component(digest, MAX_COMPONENT_BYTES).await {
                Ok(bytes) => break bytes,
                Err(Failure::NotFound(_)) => {
                    return Err(ComponentError::Unknown(digest.to_owned()));
                }
                Err(failure) if failure.is_retryable() => {
                    let delay = backoff.next_delay();
                    tracing::warn!(
                        digest,
                        "cannot download the component: {failure}; backing off {delay:.1?}"
                    );
                    tokio::time::sleep(delay).await;
                }
                Err(failure) => {
                    return Err(ComponentError::Refused {
                        digest: digest.to_owned(),
                        failure,
                    });
                }
            }
        };
        verify(digest, &bytes)?;
        let (registry, plugins) = (self.registry.clone(), self.plugins.clone());
        // Installing validates and compiles the component: CPU work, off the
        // async threads.
        let installed = tokio::task::spawn_blocking(move || registry.install(&plugins, &bytes))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()));
        match installed {
            Ok(meta) => {
                tracing::info!(
                    digest,
                    "downloaded and installed operator {}@{}",
                    meta.name,
                    meta.version
                );
                Ok(())
            }
            Err(reason) => Err(ComponentError::Install {
                digest: digest.to_owned(),
                reason,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_checked_in_form_and_content() {
        let bytes = b"\0asm not really";
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(bytes)));
        assert!(valid_digest(&digest));
        verify(&digest, bytes).unwrap();
        let err = verify(&digest, b"other bytes").unwrap_err().to_string();
        assert!(
            err.contains(&digest) && err.contains("has digest sha256:"),
            "{err}"
        );

        assert!(!valid_digest(&digest.to_uppercase()));
        assert!(!valid_digest(&digest[..digest.len() - 1]));
        assert!(!valid_digest("sha256:../../etc/passwd"));
        assert!(!valid_digest(&digest.replace("sha256:", "sha512:")));
    }
}
