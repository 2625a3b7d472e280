//! Image bytes, stored by content: the key is the SHA-256 of the bytes, so the same image
//! uploaded twice is stored once and a stored blob never changes. Behind [`BlobStore`] so an
//! S3-compatible store can replace the file system without touching handlers.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use anyhow::Context as _;
use futures::future::BoxFuture;

/// Where blobs live. Keys are lower-case hex SHA-256 digests.
pub trait BlobStore: Send + Sync + 'static {
    /// Stores `bytes` under `sha256` unless it is there already; true if it was new.
    fn put(&self, sha256: &str, bytes: Vec<u8>) -> BoxFuture<'_, anyhow::Result<bool>>;
    /// The bytes stored under `sha256`, if any.
    fn get(&self, sha256: &str) -> BoxFuture<'_, anyhow::Result<Option<Vec<u8>>>>;
}

pub type Blobs = Arc<dyn BlobStore>;

/// Blobs as files under a directory: `<dir>/<first two hex digits>/<sha256>`.
pub struct FsBlobStore {
    dir: PathBuf,
}

impl FsBlobStore {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    fn path(&self, sha256: &str) -> anyhow::Result<PathBuf> {
        let valid = sha256.len() == 64
            && sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        anyhow::ensure!(valid, "not a SHA-256 key: {sha256:?}");
        Ok(self.dir.join(&sha256[..2]).join(sha256))
    }
}

impl BlobStore for FsBlobStore {
    fn put(&self, sha256: &str, bytes: Vec<u8>) -> BoxFuture<'_, anyhow::Result<bool>> {
        let path = self.path(sha256);
        Box::pin(async move {
            let path = path?;
            if tokio::fs::try_exists(&path).await.unwrap_or(false) {
                return Ok(false);
            }
            let dir = path.parent().unwrap_or(Path::new("."));
            tokio::fs::create_dir_all(dir)
                .await
                .with_context(|| format!("creating {}", dir.display()))?;
            // Written aside and renamed: a reader never sees half a blob.
            let partial = dir.join(format!(".{}.partial", uuid::Uuid::new_v4()));
            tokio::fs::write(&partial, &bytes)
                .await
                .with_context(|| format!("writing {}", partial.display()))?;
            tokio::fs::rename(&partial, &path)
                .await
                .with_context(|| format!("storing {}", path.display()))?;
            Ok(true)
        })
    }

    fn get(&self, sha256: &str) -> BoxFuture<'_, anyhow::Result<Option<Vec<u8>>>> {
        let path = self.path(sha256);
        Box::pin(async move {
            match tokio::fs::read(path?).await {
                Ok(bytes) => Ok(Some(bytes)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e.into()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_same_bytes_are_stored_once_and_read_back() {
        let dir = std::env::temp_dir().join(format!("blobs-{}", uuid::Uuid::new_v4()));
        let store = FsBlobStore::new(&dir);
        let key = "ab".repeat(32);
        assert!(store.put(&key, b"one".to_vec()).await.unwrap());
        assert!(!store.put(&key, b"one".to_vec()).await.unwrap());
        assert_eq!(store.get(&key).await.unwrap().unwrap(), b"one");
        assert!(store.get(&"cd".repeat(32)).await.unwrap().is_none());
        assert!(store.get("../../etc/passwd").await.is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
