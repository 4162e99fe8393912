//! Modules: upload (checked before anything is written, stored in chunks,
//! content-addressed, co-owned when two tenants upload the same bytes),
//! list, show and delete — each scoped to the caller.

use super::{Error, Service, audit};
use crate::api::ModuleInfo;
use crate::auth::Caller;
use crate::control::state::StateTopic;
use crate::deployment::Digest;
use crate::modules::{CHUNK_BYTES, Meta, chunk_key, meta_key, new_meta};
use crate::wasm::ModuleError;

impl Service {
    /// Check and store `bytes` for `caller`. Returns the module and
    /// whether this call created it (for this caller).
    pub async fn upload(
        &self,
        caller: &Caller,
        bytes: Vec<u8>,
    ) -> Result<(ModuleInfo, bool), Error> {
        let result = self.store_module(caller, bytes).await;
        let object = result
            .as_ref()
            .map_or("-", |(m, _)| m.digest.as_str())
            .to_owned();
        audit(caller, "module.upload", &object, &result);
        result
    }

    async fn store_module(
        &self,
        caller: &Caller,
        bytes: Vec<u8>,
    ) -> Result<(ModuleInfo, bool), Error> {
        self.check_ready()?;
        if bytes.len() > self.max_module_bytes {
            return Err(Error::TooLarge(self.max_module_bytes));
        }
        // One compile at a time (wasmtime already compiles a module on
        // every core); others queue briefly, then are told to come back.
        let _permit = tokio::time::timeout(self.compile_queue_wait, self.compiles.acquire())
            .await
            .map_err(|_| {
                Error::Busy(format!(
                    "other uploads are being compiled; none could start within {} ms, retry in a moment",
                    self.compile_queue_wait.as_millis()
                ))
            })?
            .map_err(|e| Error::Internal(e.to_string()))?;
        // Quotas under the permit, so concurrent uploads of one tenant
        // are counted one after another; a tenant past them compiles
        // nothing.
        let digest = Digest::of(&bytes);
        let owned: Vec<ModuleInfo> = self
            .modules
            .all()
            .into_iter()
            .filter(|m| m.owners.contains(caller.name()))
            .collect();
        super::rules::check_module_quota(caller, &owned, digest.as_str(), bytes.len())?;
        let modules = self.modules.clone();
        let (loaded, bytes) = tokio::task::spawn_blocking(move || (modules.check(&bytes), bytes))
            .await
            .map_err(|e| Error::Internal(format!("module check panicked: {e}")))?;
        let loaded = loaded.map_err(|e| match e {
            ModuleError::Read { .. } => Error::Internal(e.to_string()),
            other => Error::Invalid(other.to_string()),
        })?;
        let owner = caller.name().to_owned();
        let meta = match self.modules.meta(loaded.digest.as_str()) {
            Some(mut meta) => {
                if !meta.info.owners.insert(owner) {
                    return Ok((visible(caller, &meta.info), false));
                }
                meta
            }
            None => {
                let chunks: Vec<&[u8]> = bytes.chunks(CHUNK_BYTES).collect();
                for (i, chunk) in chunks.iter().enumerate() {
                    let key = chunk_key(&loaded.digest, i as u32);
                    self.state
                        .put(StateTopic::Modules, &key, Some(chunk))
                        .await?;
                }
                new_meta(&loaded, &owner, chunks.len() as u32)
            }
        };
        self.put_meta(&meta).await?;
        Ok((visible(caller, &meta.info), true))
    }

    async fn put_meta(&self, meta: &Meta) -> Result<(), Error> {
        let json = serde_json::to_vec(meta).map_err(|e| Error::Internal(e.to_string()))?;
        let digest = Digest::parse(&meta.info.digest).map_err(Error::Internal)?;
        let offset = self
            .state
            .put(StateTopic::Modules, &meta_key(&digest), Some(&json))
            .await?;
        self.state.wait_applied(StateTopic::Modules, offset).await
    }

    /// Every module the caller may see.
    pub fn modules(&self, caller: &Caller) -> Vec<ModuleInfo> {
        self.modules
            .all()
            .iter()
            .filter(|m| m.owners.iter().any(|o| caller.sees(o)))
            .map(|m| visible(caller, m))
            .collect()
    }

    /// The module `digest`, if the caller may see it (else not found).
    pub fn module(&self, caller: &Caller, digest: &str) -> Result<ModuleInfo, Error> {
        self.modules
            .meta(digest)
            .filter(|m| m.info.owners.iter().any(|o| caller.sees(o)))
            .map(|m| visible(caller, &m.info))
            .ok_or_else(|| Error::NotFound(format!("module {digest:?}")))
    }

    /// Drop the caller's ownership of `digest` (every owner's, for the
    /// operator); the bytes go with the last owner. Refused while one of
    /// the caller's deployments runs it or keeps it for rollback.
    pub async fn delete_module(&self, caller: &Caller, digest: &str) -> Result<(), Error> {
        let result = self.remove_module(caller, digest).await;
        audit(caller, "module.delete", digest, &result);
        result
    }

    async fn remove_module(&self, caller: &Caller, digest: &str) -> Result<(), Error> {
        self.check_ready()?;
        self.module(caller, digest)?;
        let user = self.visible(caller).into_iter().find(|v| {
            v.record
                .as_ref()
                .is_some_and(|r| r.modules().any(|m| m.to_string() == digest))
        });
        if let Some(user) = user {
            return Err(Error::Conflict(format!(
                "module {digest:?} is used by deployment {:?} (now or for rollback); delete or update that deployment first",
                user.record
                    .as_ref()
                    .map_or(user.key.as_str(), |r| r.name.as_str())
            )));
        }
        let Some(mut meta) = self.modules.meta(digest) else {
            return Err(Error::NotFound(format!("module {digest:?}")));
        };
        meta.info.owners.retain(|o| !caller.sees(o));
        if !meta.info.owners.is_empty() {
            return self.put_meta(&meta).await;
        }
        let digest = Digest::parse(digest).map_err(Error::Invalid)?;
        let offset = self
            .state
            .put(StateTopic::Modules, &meta_key(&digest), None)
            .await?;
        for i in 0..meta.chunks {
            self.state
                .put(StateTopic::Modules, &chunk_key(&digest, i), None)
                .await?;
        }
        self.state.wait_applied(StateTopic::Modules, offset).await
    }
}

/// A tenant sees only itself among the owners: who else uploaded the same
/// bytes is none of its business.
fn visible(caller: &Caller, m: &ModuleInfo) -> ModuleInfo {
    let mut m = m.clone();
    m.owners.retain(|o| caller.sees(o));
    m
}
