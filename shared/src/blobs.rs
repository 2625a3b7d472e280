//! Image bytes, stored by content: the key is the SHA-256 of the bytes, so the same image
//! uploaded twice is stored once and a stored blob never changes. Behind [`BlobStore`] so an
//! S3-compatible store can replace the file system without touching handlers.
//!
//! Each blob has a "last stored" time (the file's mtime): storing bytes that are there already
//! renews it, so the collector of unreferenced blobs, which only looks at blobs older than its
//! grace period, never takes one an upload in flight is about to reference.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, SystemTime},
};

use anyhow::Context as _;
use bytes::Bytes;
use futures::{StreamExt as _, future::BoxFuture, stream::BoxStream};

/// A blob's bytes as a stream of chunks, and its length.
pub struct BlobReader {
    pub len: u64,
    pub chunks: BoxStream<'static, std::io::Result<Bytes>>,
}

/// Where blobs live. Keys are lower-case hex SHA-256 digests.
pub trait BlobStore: Send + Sync + 'static {
    /// Stores `bytes` under `sha256` unless it is there already (then renews its time);
    /// true if it was new.
    fn put(&self, sha256: &str, bytes: Vec<u8>) -> BoxFuture<'_, anyhow::Result<bool>>;
    /// The bytes stored under `sha256`, if any.
    fn get(&self, sha256: &str) -> BoxFuture<'_, anyhow::Result<Option<Vec<u8>>>>;
    /// The bytes under `sha256` as a stream, without holding them all in memory.
    fn open(&self, sha256: &str) -> BoxFuture<'_, anyhow::Result<Option<BlobReader>>>;
    /// Keys last stored more than `age` ago (leftovers of interrupted writes that old are
    /// removed on the way).
    fn older_than(&self, age: Duration) -> BoxFuture<'_, anyhow::Result<Vec<String>>>;
    /// Removes the blob; true if it was there.
    fn remove(&self, sha256: &str) -> BoxFuture<'_, anyhow::Result<bool>>;
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
                let touched = path.clone();
                tokio::task::spawn_blocking(move || {
                    std::fs::OpenOptions::new()
                        .write(true)
                        .open(&touched)?
                        .set_modified(SystemTime::now())
                })
                .await?
                .with_context(|| format!("renewing {}", path.display()))?;
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

    fn open(&self, sha256: &str) -> BoxFuture<'_, anyhow::Result<Option<BlobReader>>> {
        let path = self.path(sha256);
        Box::pin(async move {
            let file = match tokio::fs::File::open(path?).await {
                Ok(file) => file,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e.into()),
            };
            let len = file.metadata().await?.len();
            let chunks = tokio_util::io::ReaderStream::with_capacity(file, 64 * 1024).boxed();
            Ok(Some(BlobReader { len, chunks }))
        })
    }

    fn older_than(&self, age: Duration) -> BoxFuture<'_, anyhow::Result<Vec<String>>> {
        let dir = self.dir.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || scan(&dir, age))
                .await
                .context("scanning the blob directory")?
        })
    }

    fn remove(&self, sha256: &str) -> BoxFuture<'_, anyhow::Result<bool>> {
        let path = self.path(sha256);
        Box::pin(async move {
            match tokio::fs::remove_file(path?).await {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
                Err(e) => Err(e.into()),
            }
        })
    }
}

fn scan(dir: &Path, age: Duration) -> anyhow::Result<Vec<String>> {
    let cutoff = SystemTime::now() - age;
    let mut keys = Vec::new();
    let shards = match std::fs::read_dir(dir) {
        Ok(shards) => shards,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(keys),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    for shard in shards.flatten() {
        let Ok(entries) = std::fs::read_dir(shard.path()) else {
            continue;
        };
        for entry in entries.flatten() {
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|modified| modified < cutoff);
            if !old {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".partial") {
                let _ = std::fs::remove_file(entry.path());
            } else if name.len() == 64 {
                keys.push(name);
            }
        }
    }
    Ok(keys)
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

        let reader = store.open(&key).await.unwrap().unwrap();
        assert_eq!(reader.len, 3);
        let streamed: Vec<Bytes> = reader.chunks.map(Result::unwrap).collect().await;
        assert_eq!(streamed.concat(), b"one");

        assert!(
            store
                .older_than(Duration::from_secs(60))
                .await
                .unwrap()
                .is_empty()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        let old = store.older_than(Duration::from_millis(10)).await.unwrap();
        assert_eq!(old, std::slice::from_ref(&key));
        // Storing the same bytes again renews the blob: it is not old any more.
        assert!(!store.put(&key, b"one".to_vec()).await.unwrap());
        assert!(
            store
                .older_than(Duration::from_millis(10))
                .await
                .unwrap()
                .is_empty()
        );
        assert!(store.remove(&key).await.unwrap());
        assert!(store.get(&key).await.unwrap().is_none());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
