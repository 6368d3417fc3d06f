//! The object store where rendered audio lives: written by the worker, read
//! by the gateway. `storage.backend` picks a local directory
//! (`storage.root`, the default) or an S3-compatible bucket (`storage.s3`),
//! whose objects the gateway hands out as presigned URLs. Keys are
//! `{workspace}/{generation}.{ext}` in both.
//!
//! Secrets: the S3 credentials come from the settings (wrapped, never
//! printed) or from the standard `AWS_*` environment when left out there.

use std::sync::Arc;
use std::time::Duration;

use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::signer::{Method, Signer};
use secrecy::ExposeSecret;

use crate::formats::AudioFormat;
use crate::ids::{GenerationId, WorkspaceId};
use crate::settings::{S3Settings, StorageBackend, StorageSettings};

/// SigV4 presigned URLs live at most seven days.
pub const MAX_PRESIGN: Duration = Duration::from_secs(7 * 24 * 3600);

/// The configured store, and for S3 what presigns its URLs.
#[derive(Clone)]
pub struct Storage {
    pub store: Arc<dyn ObjectStore>,
    signer: Option<Arc<dyn Signer>>,
}

impl Storage {
    /// Whether objects can be handed out as presigned URLs (S3).
    pub fn presigns(&self) -> bool {
        self.signer.is_some()
    }

    /// A presigned GET URL of `key` valid for `ttl` (at most seven days);
    /// `None` on a local store, whose audio the gateway serves itself.
    pub async fn presigned_get(
        &self,
        key: &Path,
        ttl: Duration,
    ) -> Option<object_store::Result<String>> {
        let signer = self.signer.as_ref()?;
        let ttl = ttl.min(MAX_PRESIGN);
        Some(
            signer
                .signed_url(Method::GET, key, ttl)
                .await
                .map(|u| u.to_string()),
        )
    }
}

/// Opens the configured store (creating the local directory if needed).
pub fn open(settings: &StorageSettings) -> anyhow::Result<Arc<dyn ObjectStore>> {
    Ok(open_storage(settings)?.store)
}

/// Opens the configured store with its presigner.
pub fn open_storage(settings: &StorageSettings) -> anyhow::Result<Storage> {
    match settings.backend {
        StorageBackend::Local => {
            std::fs::create_dir_all(&settings.root).map_err(|e| {
                anyhow::anyhow!(
                    "Failed to create storage root {}: {e}",
                    settings.root.display()
                )
            })?;
            let store = LocalFileSystem::new_with_prefix(&settings.root)?;
            Ok(Storage {
                store: Arc::new(store),
                signer: None,
            })
        }
        StorageBackend::S3 => {
            let s3 = Arc::new(s3_builder(&settings.s3).build().map_err(|e| {
                anyhow::anyhow!("Failed to configure S3 bucket {}: {e}", settings.s3.bucket)
            })?);
            Ok(Storage {
                store: s3.clone(),
                signer: Some(s3),
            })
        }
    }
}

/// The standard `AWS_*` environment first, then what the settings say.
fn s3_builder(s: &S3Settings) -> AmazonS3Builder {
    let mut b = AmazonS3Builder::from_env()
        .with_bucket_name(&s.bucket)
        .with_region(&s.region)
        .with_virtual_hosted_style_request(!s.path_style)
        .with_allow_http(s.allow_http);
    if let Some(endpoint) = s.endpoint.as_deref().filter(|e| !e.is_empty()) {
        b = b.with_endpoint(endpoint);
    }
    if let Some(id) = &s.access_key_id {
        b = b.with_access_key_id(id.expose_secret());
    }
    if let Some(secret) = &s.secret_access_key {
        b = b.with_secret_access_key(secret.expose_secret());
    }
    b
}

/// Where a generation's audio is stored.
pub fn audio_key(workspace: WorkspaceId, generation: GenerationId, format: AudioFormat) -> Path {
    Path::from(format!(
        "{}/{}.{}",
        workspace,
        generation,
        format.extension()
    ))
}
