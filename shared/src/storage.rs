//! The object store where rendered audio lives: written by the worker, read
//! by the gateway. A local directory by default (`storage.root`); an
//! S3-compatible store is issue 7. Keys are `{workspace}/{generation}.{ext}`.

use std::sync::Arc;

use object_store::ObjectStore;
use object_store::local::LocalFileSystem;
use object_store::path::Path;

use crate::formats::AudioFormat;
use crate::ids::{GenerationId, WorkspaceId};
use crate::settings::StorageSettings;

/// Opens the configured store, creating the local directory if needed.
pub fn open(settings: &StorageSettings) -> anyhow::Result<Arc<dyn ObjectStore>> {
    std::fs::create_dir_all(&settings.root).map_err(|e| {
        anyhow::anyhow!(
            "Failed to create storage root {}: {e}",
            settings.root.display()
        )
    })?;
    let store = LocalFileSystem::new_with_prefix(&settings.root)?;
    Ok(Arc::new(store))
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
