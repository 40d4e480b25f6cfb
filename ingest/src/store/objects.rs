//! The store's objects, in a local folder or in a bucket of an S3 server:
//! one interface for both, with the two conditional writes that several
//! instances need to share one store safely (write if absent, write if
//! unchanged since read).
//!
//! An object is written whole or not at all on both: a folder writes a
//! temporary name, fsyncs it and renames it; an S3 PUT is atomic. A
//! conditional write on S3 uses the HTTP preconditions `If-None-Match: *`
//! and `If-Match: ETAG` (the server must honour them: AWS S3 since 2024,
//! MinIO, Cloudflare R2, s3s-fs); in a folder, it holds an exclusive lock
//! on `.objects.lock` while it compares and writes, and an object's version
//! is a digest of its content with its inode and modification time.
//!
//! Keys are relative, `/`-separated (`leases/analysis.json`), of segments
//! made of `A-Z a-z 0-9 . _ - + =` that do not start with `.`: what both
//! a folder and S3 keep as it is.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::TryStreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder, S3ConditionalPut};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use sha2::{Digest, Sha256};

use super::{write_bytes_atomic, Durability};

/// Where a store lives: a local folder, or `s3://BUCKET/PREFIX`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A folder on this machine (or a network file system).
    Folder(PathBuf),
    /// A bucket of an S3 server, under a prefix.
    S3(S3Location),
}

/// A bucket and prefix of an S3 server, and how to reach it. What is not
/// set here comes from the usual AWS environment variables
/// (`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_ALLOW_HTTP`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    /// The bucket's name.
    pub bucket: String,
    /// The prefix under which the store's objects are kept, without a
    /// leading or trailing `/` (empty: the whole bucket).
    pub prefix: String,
    /// The server's URL (`http://127.0.0.1:9000`); `None`: AWS itself, or
    /// `AWS_ENDPOINT_URL`.
    pub endpoint: Option<String>,
    /// The region; `None`: `AWS_REGION`, else `us-east-1`.
    pub region: Option<String>,
    /// Whether plain HTTP is allowed (a server on loopback or in a private
    /// network); HTTPS otherwise.
    pub allow_http: bool,
    /// An access key and its secret; `None`: the environment's.
    pub credentials: Option<(String, String)>,
}

impl Location {
    /// Reads a store path: `s3://BUCKET[/PREFIX]`, or a folder.
    pub fn parse(s: &str) -> Result<Location, String> {
        let Some(rest) = s.strip_prefix("s3://") else {
            return Ok(Location::Folder(PathBuf::from(s)));
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let prefix = prefix.trim_matches('/');
        let valid_bucket = (3..=63).contains(&bucket.len())
            && bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !valid_bucket {
            return Err(format!(
                "{s}: a bucket name has 3 to 63 characters, lower-case letters, digits, '-' and '.'"
            ));
        }
        if !prefix.is_empty() {
            check_key(prefix).map_err(|e| format!("{s}: the prefix {e}"))?;
        }
        Ok(Location::S3(S3Location {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
            endpoint: None,
            region: None,
            allow_http: false,
            credentials: None,
        }))
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Folder(p) => write!(f, "{}", p.display()),
            Location::S3(s) if s.prefix.is_empty() => write!(f, "s3://{}", s.bucket),
            Location::S3(s) => write!(f, "s3://{}/{}", s.bucket, s.prefix),
        }
    }
}

/// The version of an object that a conditional write must find in place:
/// the server's entity tag (and version id, where it keeps versions), or a
/// digest of the content in a folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    e_tag: Option<String>,
    version: Option<String>,
}

/// Why an object operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    /// A conditional write found the object present (write if absent) or
    /// changed since it was read (write if unchanged): another writer got
    /// there first.
    #[error("{key}: changed by another writer")]
    Conflict {
        /// The object's key.
        key: String,
    },
    /// The key is not one the store accepts.
    #[error("{key}: {reason}")]
    BadKey {
        /// The key as given.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The server or the file system failed (unreachable, full): a retry
    /// may succeed.
    #[error("{key}: {message}")]
    Failed {
        /// The object's key (or prefix).
        key: String,
        /// The underlying error, as text.
        message: String,
    },
    /// The server or the file system refused the credentials or the
    /// permission (HTTP 401 or 403, EACCES): no retry helps.
    #[error("{key}: refused: {message}")]
    Denied {
        /// The object's key (or prefix).
        key: String,
        /// The underlying error, as text.
        message: String,
    },
}

fn check_key(key: &str) -> Result<(), String> {
    if key.is_empty() || key.len() > 900 {
        return Err("must have 1 to 900 bytes".into());
    }
    for seg in key.split('/') {
        if seg.is_empty() {
            return Err("has an empty segment".into());
        }
        // A leading dot is a temporary file's or the lock's name in a
        // folder store.
        if seg.starts_with('.') {
            return Err("has a segment that starts with '.'".into());
        }
        // What S3 and the folder both keep as it is (object_store would
        // percent-encode the rest, and the two would then disagree).
        if !seg.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'+' | b'=')) {
            return Err("has a character other than A-Z a-z 0-9 . _ - + =".into());
        }
    }
    Ok(())
}

/// A store's objects: a cheap handle to clone.
#[derive(Debug, Clone)]
pub struct Objects {
    backend: Backend,
    location: Arc<Location>,
}

#[derive(Debug, Clone)]
enum Backend {
    Folder(PathBuf),
    S3 { store: Arc<AmazonS3>, prefix: String },
}

impl Objects {
    /// Opens a store's objects. A folder is created if need be; a bucket
    /// must exist (nothing is sent to the server yet).
    pub fn open(location: &Location) -> Result<Objects, ObjectError> {
        let backend = match location {
            Location::Folder(root) => {
                fs::create_dir_all(root).map_err(|e| failed(&root.display().to_string(), e))?;
                Backend::Folder(root.clone())
            }
            Location::S3(s) => {
                // A request that hangs must not hold a flush (and the
                // consumer) for object_store's default three minutes of
                // retries: a few seconds, then the flush fails and is
                // retried, and a lease holder cut off from the server
                // notices before its term ends.
                // A request, its retries included, ends within about 7 s
                // (bucket.rs, REQUEST_BOUND).
                let retry = object_store::RetryConfig {
                    backoff: object_store::BackoffConfig::default(),
                    max_retries: 2,
                    retry_timeout: std::time::Duration::from_secs(4),
                };
                let client = |k| object_store::aws::AmazonS3ConfigKey::Client(k);
                let mut b = AmazonS3Builder::from_env()
                    .with_bucket_name(&s.bucket)
                    .with_conditional_put(S3ConditionalPut::ETagMatch)
                    .with_retry(retry)
                    .with_config(client(object_store::ClientConfigKey::Timeout), "3 seconds")
                    .with_config(client(object_store::ClientConfigKey::ConnectTimeout), "1 seconds");
                if let Some(e) = &s.endpoint {
                    b = b.with_endpoint(e);
                }
                if let Some(r) = &s.region {
                    b = b.with_region(r);
                }
                if s.allow_http {
                    b = b.with_allow_http(true);
                }
                if let Some((id, secret)) = &s.credentials {
                    b = b.with_access_key_id(id).with_secret_access_key(secret);
                }
                let store = b.build().map_err(|e| failed(&location.to_string(), e))?;
                Backend::S3 { store: Arc::new(store), prefix: s.prefix.clone() }
            }
        };
        Ok(Objects { backend, location: Arc::new(location.clone()) })
    }

    /// Where the objects are (for logs: a folder or `s3://BUCKET/PREFIX`).
    pub fn location(&self) -> &Location {
        &self.location
    }

    fn object_path(prefix: &str, key: &str) -> ObjectPath {
        if prefix.is_empty() {
            ObjectPath::from(key)
        } else {
            ObjectPath::from(format!("{prefix}/{key}"))
        }
    }

    fn checked(key: &str) -> Result<(), ObjectError> {
        check_key(key).map_err(|reason| ObjectError::BadKey { key: key.to_string(), reason })
    }

    /// The object's content and version; `None` when there is none.
    pub async fn get(&self, key: &str) -> Result<Option<(Vec<u8>, Version)>, ObjectError> {
        Self::checked(key)?;
        match &self.backend {
            Backend::Folder(root) => {
                let path = root.join(key);
                match blocking(move || folder_read(&path)).await {
                    Ok(got) => Ok(Some(got)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(failed(key, e)),
                }
            }
            Backend::S3 { store, prefix } => {
                let got = match store.get(&Self::object_path(prefix, key)).await {
                    Ok(g) => g,
                    Err(object_store::Error::NotFound { .. }) => return Ok(None),
                    Err(e) => return Err(failed(key, e)),
                };
                let v = Version { e_tag: got.meta.e_tag.clone(), version: got.meta.version.clone() };
                let bytes = got.bytes().await.map_err(|e| failed(key, e))?;
                Ok(Some((bytes.to_vec(), v)))
            }
        }
    }

    /// Writes the object whole, replacing any.
    pub async fn put(&self, key: &str, bytes: &[u8]) -> Result<Version, ObjectError> {
        self.write(key, bytes, Mode::Overwrite).await
    }

    /// Writes the object only if there is none:
    /// [`ObjectError::Conflict`] otherwise.
    pub async fn create(&self, key: &str, bytes: &[u8]) -> Result<Version, ObjectError> {
        self.write(key, bytes, Mode::Create).await
    }

    /// Writes the object only if it is still at `version` (as read by
    /// [`Objects::get`] or returned by a write): [`ObjectError::Conflict`]
    /// when it changed or is gone.
    pub async fn update(&self, key: &str, bytes: &[u8], version: &Version) -> Result<Version, ObjectError> {
        self.write(key, bytes, Mode::Update(version.clone())).await
    }

    async fn write(&self, key: &str, bytes: &[u8], mode: Mode) -> Result<Version, ObjectError> {
        Self::checked(key)?;
        match &self.backend {
            Backend::Folder(root) => {
                let (root, key, bytes) = (root.clone(), key.to_string(), bytes.to_vec());
                let k = key.clone();
                blocking(move || Ok(folder_write(&root, &key, &bytes, mode)))
                    .await
                    .unwrap_or_else(|e| Err(failed(&k, e)))
            }
            Backend::S3 { store, prefix } => {
                let mode = match mode {
                    Mode::Overwrite => PutMode::Overwrite,
                    Mode::Create => PutMode::Create,
                    Mode::Update(v) => PutMode::Update(UpdateVersion { e_tag: v.e_tag, version: v.version }),
                };
                let opts = PutOptions { mode, ..Default::default() };
                let payload = PutPayload::from(bytes.to_vec());
                match store.put_opts(&Self::object_path(prefix, key), payload, opts).await {
                    Ok(r) => Ok(Version { e_tag: r.e_tag, version: r.version }),
                    Err(
                        object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. },
                    ) => Err(ObjectError::Conflict { key: key.to_string() }),
                    // A conditional write on an object that is gone.
                    Err(object_store::Error::NotFound { .. }) => {
                        Err(ObjectError::Conflict { key: key.to_string() })
                    }
                    Err(e) => Err(failed(key, e)),
                }
            }
        }
    }

    /// The keys under `prefix` (a key's leading segments, without the
    /// trailing `/`; empty: every key) with their sizes in bytes, sorted.
    pub async fn list(&self, prefix: &str) -> Result<Vec<(String, u64)>, ObjectError> {
        if !prefix.is_empty() {
            Self::checked(prefix)?;
        }
        let mut out = match &self.backend {
            Backend::Folder(root) => {
                let root = root.clone();
                let dir = root.join(prefix);
                blocking(move || {
                    let mut out = Vec::new();
                    folder_list(&root, &dir, &mut out)?;
                    Ok(out)
                })
                .await
                .map_err(|e| failed(prefix, e))?
            }
            Backend::S3 { store, prefix: base } => {
                let full = match (base.is_empty(), prefix.is_empty()) {
                    (true, true) => None,
                    (true, false) => Some(ObjectPath::from(prefix)),
                    (false, true) => Some(ObjectPath::from(base.as_str())),
                    (false, false) => Some(ObjectPath::from(format!("{base}/{prefix}"))),
                };
                let metas: Vec<object_store::ObjectMeta> =
                    store.list(full.as_ref()).try_collect().await.map_err(|e| failed(prefix, e))?;
                let strip = if base.is_empty() { 0 } else { base.len() + 1 };
                metas.into_iter().map(|m| (m.location.as_ref()[strip..].to_string(), m.size)).collect()
            }
        };
        out.sort();
        Ok(out)
    }

    /// Whether the object is there (a HEAD on S3: its content is not read).
    pub async fn exists(&self, key: &str) -> Result<bool, ObjectError> {
        Self::checked(key)?;
        match &self.backend {
            Backend::Folder(root) => Ok(root.join(key).is_file()),
            Backend::S3 { store, prefix } => match store.head(&Self::object_path(prefix, key)).await {
                Ok(_) => Ok(true),
                Err(object_store::Error::NotFound { .. }) => Ok(false),
                Err(e) => Err(failed(key, e)),
            },
        }
    }

    /// Deletes the object; whether there was one.
    pub async fn delete(&self, key: &str) -> Result<bool, ObjectError> {
        Self::checked(key)?;
        match &self.backend {
            Backend::Folder(root) => {
                let path = root.join(key);
                match blocking(move || fs::remove_file(&path)).await {
                    Ok(()) => Ok(true),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
                    Err(e) => Err(failed(key, e)),
                }
            }
            Backend::S3 { store, prefix } => {
                let path = Self::object_path(prefix, key);
                match store.head(&path).await {
                    Err(object_store::Error::NotFound { .. }) => return Ok(false),
                    Err(e) => return Err(failed(key, e)),
                    Ok(_) => {}
                }
                match store.delete(&path).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(true),
                    Err(e) => Err(failed(key, e)),
                }
            }
        }
    }

    /// Deletes every object under `prefix` (a purge deletes a date folder
    /// this way); how many there were.
    pub async fn delete_prefix(&self, prefix: &str) -> Result<usize, ObjectError> {
        Self::checked(prefix)?;
        let keys = self.list(prefix).await?;
        match &self.backend {
            Backend::Folder(root) => {
                let dir = root.join(prefix);
                match blocking(move || fs::remove_dir_all(&dir)).await {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(failed(prefix, e)),
                }
            }
            Backend::S3 { store, prefix: base } => {
                // A DELETE of an object already gone succeeds on S3.
                for (k, _) in &keys {
                    match store.delete(&Self::object_path(base, k)).await {
                        Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                        Err(e) => return Err(failed(k, e)),
                    }
                }
            }
        }
        Ok(keys.len())
    }
}

/// Which write: whole, if absent, or if unchanged since `Version`.
enum Mode {
    Overwrite,
    Create,
    Update(Version),
}

/// Runs a folder operation (file I/O, fsync, a lock that may wait) on
/// tokio's blocking threads, not on a worker of the runtime.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| Err(std::io::Error::other(e)))
}

fn failed<E: std::fmt::Display + 'static>(key: &str, e: E) -> ObjectError {
    let any = &e as &dyn std::any::Any;
    let denied = matches!(
        any.downcast_ref::<object_store::Error>(),
        Some(object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. })
    ) || any
        .downcast_ref::<std::io::Error>()
        .is_some_and(|e| e.kind() == std::io::ErrorKind::PermissionDenied);
    let (key, message) = (key.to_string(), e.to_string());
    if denied {
        ObjectError::Denied { key, message }
    } else {
        ObjectError::Failed { key, message }
    }
}

/// A file's version: a digest of its content, and its inode and
/// modification time (each write renames a new file into place, so that
/// the same content written again is a new version, as on S3 with
/// versions).
fn file_version(bytes: &[u8], meta: &fs::Metadata) -> Version {
    use std::os::unix::fs::MetadataExt;
    let d = Sha256::digest(bytes);
    Version {
        e_tag: Some(crate::hex(&d[..16])),
        version: Some(format!("{}.{}.{}", meta.ino(), meta.mtime(), meta.mtime_nsec())),
    }
}

/// A file's content and version, read from one open file.
fn folder_read(path: &Path) -> std::io::Result<(Vec<u8>, Version)> {
    use std::io::Read;
    let mut f = fs::File::open(path)?;
    let meta = f.metadata()?;
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    f.read_to_end(&mut bytes)?;
    let v = file_version(&bytes, &meta);
    Ok((bytes, v))
}

/// A write in a folder. Conditional ones hold the store's object lock
/// while they compare and write, so two processes on one machine (or on
/// a file system that honours flock) cannot both win.
fn folder_write(root: &Path, key: &str, bytes: &[u8], mode: Mode) -> Result<Version, ObjectError> {
    let path = root.join(key);
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(|e| failed(key, e))?;
    }
    let _lock = match mode {
        Mode::Overwrite => None,
        Mode::Create | Mode::Update(_) => {
            let lock = root.join(".objects.lock");
            let f = fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&lock)
                .map_err(|e| failed(key, e))?;
            fs4::FileExt::lock(&f).map_err(|e| failed(key, e))?;
            let current = match folder_read(&path) {
                Ok((_, v)) => Some(v),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(failed(key, e)),
            };
            let ok = match (&mode, &current) {
                (Mode::Create, None) => true,
                (Mode::Update(v), Some(c)) => v == c,
                _ => false,
            };
            if !ok {
                return Err(ObjectError::Conflict { key: key.to_string() });
            }
            Some(f)
        }
    };
    write_bytes_atomic(&path, bytes, Durability::Synced).map_err(|e| failed(key, e))?;
    let meta = fs::metadata(&path).map_err(|e| failed(key, e))?;
    Ok(file_version(bytes, &meta))
}

fn folder_list(root: &Path, dir: &Path, out: &mut Vec<(String, u64)>) -> std::io::Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => {
            // The prefix names one object.
            let meta = fs::metadata(dir)?;
            let key = dir.strip_prefix(root).unwrap_or(dir).to_string_lossy().replace('\\', "/");
            out.push((key, meta.len()));
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        // Temporaries of a write under way, and the lock.
        if name.starts_with('.') {
            continue;
        }
        let ty = entry.file_type()?;
        if ty.is_dir() {
            folder_list(root, &entry.path(), out)?;
        } else if ty.is_file() {
            let key =
                entry.path().strip_prefix(root).unwrap_or(&entry.path()).to_string_lossy().replace('\\', "/");
            out.push((key, entry.metadata()?.len()));
        }
    }
    Ok(())
}
