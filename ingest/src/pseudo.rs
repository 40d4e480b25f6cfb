//! Pseudonymisation at the door: HMAC-SHA256 of the worker identifier with
//! a secret key. The identifier received is dropped as soon as it has been
//! re-keyed; only the pseudonym travels further.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::event::Pseudonym;
use crate::IngestError;

/// Keys shorter than this are refused: HMAC-SHA256 wants at least 32
/// bytes of entropy to be worth its name.
pub const MIN_KEY_BYTES: usize = 32;

/// Above this many distinct identifiers the memo is cleared, so that a
/// hostile input cannot grow it without bound.
const MEMO_LIMIT: usize = 1 << 20;

/// The key fingerprint of a run without a key file.
pub const RANDOM_KEY: &str = "random key for this run";

/// Iterations of the key fingerprint's PBKDF2 (OWASP's figure for
/// PBKDF2-HMAC-SHA256).
pub const FINGERPRINT_ROUNDS: u32 = 600_000;
const FINGERPRINT_SALT: &[u8] = b"vigie key fingerprint v1";

/// The key's fingerprint: PBKDF2-HMAC-SHA256 of the key, with a fixed salt
/// that names its purpose and [`FINGERPRINT_ROUNDS`] iterations, one
/// 32-byte block. It is published (findings.json), so it is slow to
/// compute: testing a guess of a key that has little entropy costs
/// 600,000 HMACs, not one hash. It never serves as a pseudonym key.
pub fn fingerprint_of(key: &[u8]) -> [u8; 32] {
    pbkdf2_sha256(key, FINGERPRINT_SALT, FINGERPRINT_ROUNDS)
}

/// PBKDF2-HMAC-SHA256 (RFC 8018), its first 32-byte block.
fn pbkdf2_sha256(password: &[u8], salt: &[u8], rounds: u32) -> [u8; 32] {
    pbkdf2_with(
        &Hmac::<Sha256>::new_from_slice(password).expect("HMAC takes a key of any length"),
        salt,
        rounds,
    )
}

/// PBKDF2's first block with an HMAC already keyed by the password.
fn pbkdf2_with(prf: &Hmac<Sha256>, salt: &[u8], rounds: u32) -> [u8; 32] {
    let mut mac = prf.clone();
    mac.update(salt);
    mac.update(&1u32.to_be_bytes());
    let mut u: [u8; 32] = mac.finalize().into_bytes().into();
    let mut out = u;
    for _ in 1..rounds {
        let mut mac = prf.clone();
        mac.update(&u);
        u = mac.finalize().into_bytes().into();
        for (o, x) in out.iter_mut().zip(u) {
            *o ^= x;
        }
    }
    out
}

/// The keyed hash, with a memo of identifiers already seen in this run
/// (kept in memory only, never written).
pub struct Pseudonymiser {
    mac: Hmac<Sha256>,
    memo: HashMap<Box<str>, Pseudonym, foldhash::fast::RandomState>,
    /// True when the key was drawn at random for this run.
    pub ephemeral: bool,
}

impl std::fmt::Debug for Pseudonymiser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Neither the key nor the memo is ever printed.
        f.debug_struct("Pseudonymiser").field("ephemeral", &self.ephemeral).finish()
    }
}

impl Pseudonymiser {
    /// A pseudonymiser with the given key bytes.
    pub fn new(key: &[u8]) -> Result<Self, IngestError> {
        if key.len() < MIN_KEY_BYTES {
            return Err(IngestError::Key(format!(
                "the key has {} bytes; at least {MIN_KEY_BYTES} are needed",
                key.len()
            )));
        }
        let mac = Hmac::<Sha256>::new_from_slice(key)
            .map_err(|e| IngestError::Key(format!("unusable key: {e}")))?;
        Ok(Pseudonymiser { mac, memo: HashMap::default(), ephemeral: false })
    }

    /// The key's fingerprint for provenance (docs/custody.md), in
    /// hexadecimal, or `random key for this run`.
    pub fn fingerprint(&self) -> String {
        if self.ephemeral {
            RANDOM_KEY.to_string()
        } else {
            // The keyed HMAC is PBKDF2's pseudo-random function: the key
            // itself is not kept.
            crate::hex(&pbkdf2_with(&self.mac, FINGERPRINT_SALT, FINGERPRINT_ROUNDS))
        }
    }

    /// Reads a key file: its bytes, with one trailing newline removed (so
    /// that `head -c 32 /dev/urandom | base64 > key` works as well as a
    /// raw binary key).
    pub fn from_key_file(path: &Path) -> Result<Self, IngestError> {
        let mut bytes = std::fs::read(path)
            .map_err(|e| IngestError::Key(format!("cannot read the key file {}: {e}", path.display())))?;
        if bytes.last() == Some(&b'\n') {
            bytes.pop();
            if bytes.last() == Some(&b'\r') {
                bytes.pop();
            }
        }
        Self::new(&bytes).map_err(|e| match e {
            IngestError::Key(m) => IngestError::Key(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    /// [`Pseudonymiser::from_key_file`], refusing a key file that its
    /// group or others may read (unless `allow_shared`), and warning about
    /// a short key of printable characters (little entropy).
    pub fn from_private_key_file(path: &Path, allow_shared: bool) -> Result<Self, IngestError> {
        let p = Self::from_key_file(path)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let meta = std::fs::metadata(path)
                .map_err(|e| IngestError::Key(format!("cannot read the key file {}: {e}", path.display())))?;
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 && !allow_shared {
                return Err(IngestError::Key(format!(
                    "the key file {} can be read by its group or others (mode {mode:04o}): whoever reads it can link pseudonyms to people. Run `chmod 600 {}`, or accept it with --allow-shared-key (store.allow_shared_key for the service)",
                    path.display(),
                    path.display()
                )));
            }
        }
        let bytes = std::fs::read(path).unwrap_or_default();
        let key = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
        let key = key.strip_suffix(b"\r").unwrap_or(key);
        if key.iter().all(|b| (0x20..=0x7e).contains(b)) {
            let n = key.len();
            if n < 44 {
                tracing::warn!(path = %path.display(), characters = n, "The key is {n} printable characters: at most about {} bits of entropy. Prefer 32 random bytes (head -c 32 /dev/urandom | base64)", n * 13 / 2);
            }
        }
        Ok(p)
    }

    /// A random key for this run only: pseudonyms will not match those of
    /// any other run.
    pub fn ephemeral() -> Self {
        let key: [u8; 32] = rand::random();
        let mut p = Self::new(&key).expect("32 random bytes are a valid key");
        p.ephemeral = true;
        p
    }

    /// The pseudonym of one identifier.
    /// The same key with a memo of its own, for another thread.
    pub fn fork(&self) -> Pseudonymiser {
        Pseudonymiser { mac: self.mac.clone(), memo: HashMap::default(), ephemeral: self.ephemeral }
    }

    /// An identifier as a refused record, a draft mapping or any other
    /// text vigie writes may show it: `~` and its pseudonym (the one
    /// redaction of vigie, docs/security.md).
    pub fn redacted(&mut self, identifier: &str) -> String {
        format!("~{}", self.pseudonym(identifier))
    }

    /// The pseudonym of an identifier (a `worker` value, or another identifier field's):
    /// the first 8 bytes of its HMAC-SHA256 under the key. The value received is kept
    /// only in the in-memory memo, never written or logged.
    pub fn pseudonym(&mut self, worker: &str) -> Pseudonym {
        if let Some(p) = self.memo.get(worker) {
            return *p;
        }
        let p = self.compute(worker.as_bytes());
        if self.memo.len() >= MEMO_LIMIT {
            self.memo.clear();
        }
        self.memo.insert(worker.into(), p);
        p
    }

    fn compute(&self, bytes: &[u8]) -> Pseudonym {
        let mut mac = self.mac.clone();
        mac.update(bytes);
        let out = mac.finalize().into_bytes();
        let mut first = [0u8; 8];
        first.copy_from_slice(&out[..8]);
        Pseudonym(u64::from_be_bytes(first))
    }
}

/// Where the key comes from when neither a file is given nor
/// `$VIGIE_KEY_FILE` is set.
#[derive(Debug, Clone, Copy)]
pub enum NoKeyFile<'a> {
    /// A random key for this run only (`vigie audit` and the other file
    /// commands): pseudonyms will not match those of any other run.
    Ephemeral,
    /// A key created once at this path and read from then on (the
    /// service: `vigie.key` in its store).
    CreateAt(&'a Path),
}

impl Pseudonymiser {
    /// The one key resolver of vigie: the file given (`--key-file`,
    /// `store.key_file`), else `$VIGIE_KEY_FILE`, else `otherwise`. A key
    /// file its group or others may read is refused unless `allow_shared`.
    pub fn resolve(
        given: Option<&Path>,
        allow_shared: bool,
        otherwise: NoKeyFile<'_>,
    ) -> Result<Self, IngestError> {
        let path =
            given.map(Path::to_path_buf).or_else(|| std::env::var_os("VIGIE_KEY_FILE").map(PathBuf::from));
        let path = match (path, otherwise) {
            (None, NoKeyFile::Ephemeral) => {
                tracing::warn!("No key file (--key-file or VIGIE_KEY_FILE): using a random key; pseudonyms will not match across runs");
                return Ok(Self::ephemeral());
            }
            (Some(p), NoKeyFile::Ephemeral) => p,
            // The service creates the key it is pointed at when there is
            // none yet: it runs unattended.
            (given, NoKeyFile::CreateAt(store)) => {
                let p = given.unwrap_or_else(|| store.to_path_buf());
                if !p.exists() {
                    create_key(&p)?;
                    if p == store {
                        tracing::warn!(path = %p.display(), "No key file configured: using a key kept in the store; keep it apart from the store where you can");
                    }
                }
                p
            }
        };
        Self::from_private_key_file(&path, allow_shared)
    }
}

/// Creates a random 32-byte key at `path` (hex, mode 0600), unless one is
/// already there.
pub fn create_key(path: &Path) -> Result<(), IngestError> {
    use rand::RngCore;
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| IngestError::io(dir, e))?;
    let mut key = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut key);
    let hex = crate::hex(&key);
    // Written whole under a temporary name, then linked into place: when
    // instances start together, one key wins and every instance reads it.
    let tmp = dir.join(format!(".vigie.key.{}.new", std::process::id()));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp).map_err(|e| IngestError::io(&tmp, e))?;
    f.write_all(hex.as_bytes()).and_then(|()| f.sync_all()).map_err(|e| IngestError::io(&tmp, e))?;
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(IngestError::io(path, e)),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_fingerprint_is_pbkdf2_hmac_sha256() {
        // Test vectors of PBKDF2-HMAC-SHA256 (RFC 7914, section 11, and
        // the common `password`/`salt` set), first 32 bytes.
        let hex = |b: [u8; 32]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        assert_eq!(
            hex(pbkdf2_sha256(b"password", b"salt", 1)),
            "120fb6cffcf8b32c43e7225256c4f837a86548c92ccc35480805987cb70be17b"
        );
        assert_eq!(
            hex(pbkdf2_sha256(b"password", b"salt", 4096)),
            "c5e478d59288c841aa530db6845c4c8d962893a001ce4e11a4963873aa98134a"
        );
        // The fingerprint is that of the key, from the keyed HMAC.
        let hex32 = |b: [u8; 32]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        assert_eq!(
            Pseudonymiser::new(&[b'k'; 32]).unwrap().fingerprint(),
            hex32(fingerprint_of(&[b'k'; 32]))
        );
        // The same key, the same fingerprint; another key, another.
        let a = Pseudonymiser::new(&[b'k'; 32]).unwrap().fingerprint();
        assert_eq!(a, Pseudonymiser::new(&[b'k'; 32]).unwrap().fingerprint());
        assert_ne!(a, Pseudonymiser::new(&[b'j'; 32]).unwrap().fingerprint());
        assert_eq!(Pseudonymiser::ephemeral().fingerprint(), RANDOM_KEY);
    }

    use super::*;

    #[test]
    fn pseudonym_is_the_truncated_hmac() {
        // RFC 4231 test case 2 uses a short key; this one uses a 32-byte key
        // and checks against an independent computation:
        // python3 -c "import hmac,hashlib;print(hmac.new(b'k'*32,b'w-0001',hashlib.sha256).hexdigest()[:16])"
        let mut p = Pseudonymiser::new(&[b'k'; 32]).unwrap();
        assert_eq!(p.pseudonym("w-0001").to_string(), "a0e8d82900ed1c77");
        // The memo gives the same answer.
        assert_eq!(p.pseudonym("w-0001").to_string(), "a0e8d82900ed1c77");
        assert_ne!(p.pseudonym("w-0002"), p.pseudonym("w-0001"));
    }

    #[test]
    fn short_keys_are_refused() {
        assert!(Pseudonymiser::new(&[1u8; 16]).is_err());
    }

    #[test]
    fn debug_never_shows_the_memo() {
        let mut p = Pseudonymiser::new(&[b'k'; 32]).unwrap();
        p.pseudonym("alice-secret");
        assert!(!format!("{p:?}").contains("alice"));
    }
}
