//! Chain of custody (docs/custody.md): the manifest of an output folder,
//! its optional signature in OpenSSH's format, and `vigie verify`, which
//! checks a folder against them, the inputs against the provenance in
//! findings.json, and can run the audit again to show that it gives the
//! same findings.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use vigie_analyze::findings::Findings;

/// The manifest's file name in the output folder.
pub const MANIFEST: &str = "manifest.json";
/// The signature of the manifest (an armored OpenSSH signature).
pub const SIGNATURE: &str = "manifest.json.sig";
/// The namespace of vigie's signatures (`ssh-keygen -Y verify -n vigie`).
pub const NAMESPACE: &str = "vigie";
pub const MANIFEST_SCHEMA: &str = "vigie.manifest.v1";

/// Every file an audit wrote, with its hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub schema: String,
    pub files: Vec<Entry>,
}

/// One file of the output folder; `path` is relative to it, with `/`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
}

/// Size and SHA-256 (hexadecimal) of a file, streamed.
pub fn sha256_file(path: &Path) -> std::io::Result<(u64, String)> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut bytes = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        bytes += n as u64;
    }
    Ok((bytes, hex(&h.finalize())))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The hex SHA-256 of a file's bytes, for provenance.
pub fn sha256_of(path: &Path) -> anyhow::Result<String> {
    sha256_file(path).map(|(_, h)| h).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// Files a previous run may have left that this one does not rewrite:
/// removed at the start of an audit, so that none is taken for this run's.
pub fn clear_previous(out: &Path) -> anyhow::Result<()> {
    for name in [MANIFEST, SIGNATURE, "report.pdf"] {
        let p = out.join(name);
        if p.exists() {
            std::fs::remove_file(&p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
        }
    }
    Ok(())
}

/// Writes `OUT/manifest.json` listing `files` (relative to `out`) with
/// their sizes and hashes, sorted by path.
pub fn write_manifest(out: &Path, files: &[String]) -> anyhow::Result<Manifest> {
    let mut files: Vec<String> = files.to_vec();
    files.sort();
    files.dedup();
    let mut entries = Vec::with_capacity(files.len());
    for f in files {
        let (bytes, sha256) =
            sha256_file(&out.join(&f)).map_err(|e| anyhow::anyhow!("{}: {e}", out.join(&f).display()))?;
        entries.push(Entry { path: f, bytes, sha256 });
    }
    let m = Manifest { schema: MANIFEST_SCHEMA.into(), files: entries };
    let mut text = serde_json::to_string_pretty(&m)?;
    text.push('\n');
    crate::audit::write_atomic(&out.join(MANIFEST), text.as_bytes())?;
    Ok(m)
}

/// Signs `OUT/manifest.json` with an OpenSSH Ed25519 private key (an
/// unencrypted `ssh-keygen -t ed25519` key) and writes
/// `OUT/manifest.json.sig`. Returns the signing key's fingerprint.
pub fn sign(out: &Path, key_file: &Path) -> anyhow::Result<String> {
    let key = ssh_key::PrivateKey::read_openssh_file(key_file)
        .map_err(|e| anyhow::anyhow!("{}: not an OpenSSH private key ({e})", key_file.display()))?;
    if key.is_encrypted() {
        anyhow::bail!(
            "{}: the key is protected by a passphrase, which vigie cannot ask for; sign with an unencrypted key kept offline, or sign manifest.json with `ssh-keygen -Y sign -n {NAMESPACE}`",
            key_file.display()
        );
    }
    if key.algorithm() != ssh_key::Algorithm::Ed25519 {
        anyhow::bail!(
            "{}: an Ed25519 key is needed (ssh-keygen -t ed25519), not {}",
            key_file.display(),
            key.algorithm()
        );
    }
    let manifest = std::fs::read(out.join(MANIFEST))?;
    let sig = key
        .sign(NAMESPACE, ssh_key::HashAlg::Sha512, &manifest)
        .map_err(|e| anyhow::anyhow!("signing failed: {e}"))?;
    let pem = sig.to_pem(ssh_key::LineEnding::LF).map_err(|e| anyhow::anyhow!("signing failed: {e}"))?;
    crate::audit::write_atomic(&out.join(SIGNATURE), pem.as_bytes())?;
    Ok(key.public_key().fingerprint(ssh_key::HashAlg::Sha256).to_string())
}

/// Writes the manifest of an audit's output and, with a key, its
/// signature.
pub fn seal(out: &Path, files: &[String], sign_key: Option<&Path>) -> anyhow::Result<()> {
    write_manifest(out, files)?;
    if let Some(k) = sign_key {
        let fp = sign(out, k)?;
        eprintln!("manifest signed with {fp}");
    }
    Ok(())
}

/// The files of `dir`, relative to it (with `/`), recursively.
fn listing(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(rd) = std::fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else if let Ok(rel) = p.strip_prefix(root) {
                out.push(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// What `vigie verify` is asked to check.
#[derive(Debug, Default)]
pub struct VerifyRequest {
    pub out: PathBuf,
    pub inputs: Vec<PathBuf>,
    pub pub_key: Option<PathBuf>,
    /// With the key file (and the employer declaration and mapping when
    /// the run had them): run the audit again and compare.
    pub rerun_key: Option<PathBuf>,
    pub employer: Option<PathBuf>,
    pub mapping: Option<PathBuf>,
}

/// One line of the verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub ok: bool,
    pub what: String,
}

fn pass(what: impl Into<String>) -> Check {
    Check { ok: true, what: what.into() }
}

fn fail(what: impl Into<String>) -> Check {
    Check { ok: false, what: what.into() }
}

/// Checks an output folder: every file against the manifest, the
/// signature, the inputs against the provenance, and (with the key) a
/// second run of the audit. Every check is made and reported; the folder
/// verifies when all pass.
pub fn verify(req: &VerifyRequest) -> anyhow::Result<Vec<Check>> {
    let out = &req.out;
    let mut checks = Vec::new();
    let manifest_bytes = std::fs::read(out.join(MANIFEST)).map_err(|e| {
        anyhow::anyhow!(
            "{}: {e} (was the folder written by vigie 0.1 or later?)",
            out.join(MANIFEST).display()
        )
    })?;
    let manifest: Manifest = serde_json::from_slice(&manifest_bytes)
        .map_err(|e| anyhow::anyhow!("{}: not a vigie manifest ({e})", out.join(MANIFEST).display()))?;

    // 1. The signature, first: it says whether the manifest itself can be
    //    trusted.
    let sig_path = out.join(SIGNATURE);
    match (&req.pub_key, sig_path.exists()) {
        (Some(k), true) => checks.push(check_signature(&manifest_bytes, &sig_path, k)),
        (Some(_), false) => {
            checks.push(fail(format!("signature: {SIGNATURE} is missing, but a public key was given")))
        }
        (None, true) => checks.push(pass("signature: present, not checked (give --pub-key to check it)")),
        (None, false) => {}
    }

    // 2. Every file against the manifest.
    for e in &manifest.files {
        let p = out.join(&e.path);
        match sha256_file(&p) {
            Ok((bytes, sha)) if sha == e.sha256 && bytes == e.bytes => {
                checks.push(pass(format!("{}: matches the manifest", e.path)))
            }
            Ok(_) => checks.push(fail(format!("{}: CHANGED since the manifest was written", e.path))),
            Err(err) => checks.push(fail(format!("{}: MISSING ({err})", e.path))),
        }
    }
    let listed: std::collections::BTreeSet<&str> = manifest.files.iter().map(|e| e.path.as_str()).collect();
    for f in listing(out) {
        if f != MANIFEST && f != SIGNATURE && !listed.contains(f.as_str()) {
            checks
                .push(fail(format!("{f}: not in the manifest (added after the run, or by another program)")));
        }
    }

    // 3. The inputs against the provenance.
    let findings: Option<Findings> =
        std::fs::read(out.join("findings.json")).ok().and_then(|b| serde_json::from_slice(&b).ok());
    let provenance = findings.as_ref().and_then(|f| f.provenance.clone());
    if !req.inputs.is_empty() {
        match &provenance {
            None => checks.push(fail("findings.json has no provenance: inputs cannot be checked")),
            Some(p) => {
                for input in &req.inputs {
                    let (bytes, sha) =
                        sha256_file(input).map_err(|e| anyhow::anyhow!("{}: {e}", input.display()))?;
                    let shown = input.display();
                    match p.inputs.iter().find(|i| i.sha256 == sha && i.bytes == bytes) {
                        Some(i) => checks
                            .push(pass(format!("input {shown}: is `{}` of the run (sha256 {sha})", i.name))),
                        None => checks.push(fail(format!(
                            "input {shown}: NOT an input of the run (sha256 {sha}; the run read {})",
                            p.inputs
                                .iter()
                                .map(|i| format!("`{}` {}", i.name, i.sha256))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ))),
                    }
                }
            }
        }
    }

    // 4. The audit again, with the recorded policy and the same key.
    if let Some(key) = &req.rerun_key {
        match (&findings, &provenance) {
            (Some(f), Some(p)) => checks.extend(rerun(req, key, f, p)?),
            _ => {
                checks.push(fail("findings.json is missing or has no provenance: the run cannot be repeated"))
            }
        }
    }
    Ok(checks)
}

fn check_signature(manifest: &[u8], sig_path: &Path, pub_key: &Path) -> Check {
    let key = match ssh_key::PublicKey::read_openssh_file(pub_key) {
        Ok(k) => k,
        Err(e) => {
            return fail(format!("signature: {} is not an OpenSSH public key ({e})", pub_key.display()))
        }
    };
    let sig = match std::fs::read_to_string(sig_path)
        .map_err(|e| e.to_string())
        .and_then(|t| ssh_key::SshSig::from_pem(t.as_bytes()).map_err(|e| e.to_string()))
    {
        Ok(s) => s,
        Err(e) => return fail(format!("signature: {SIGNATURE} does not read ({e})")),
    };
    let fp = key.fingerprint(ssh_key::HashAlg::Sha256);
    if sig.public_key() != key.key_data() {
        return fail(format!("signature: made with another key than {fp}"));
    }
    match key.verify(NAMESPACE, manifest, &sig) {
        Ok(()) => pass(format!("signature: good, by {fp}")),
        Err(_) => fail(format!("signature: BAD for {fp} (the manifest was changed after signing)")),
    }
}

/// findings.json with the two values that may differ between two runs of
/// the same audit blanked: when it was made, and the file names as typed.
fn comparable(f: &Findings) -> anyhow::Result<String> {
    let mut f = f.clone();
    f.generated_at = String::new();
    f.input.files = Vec::new();
    Ok(f.to_json())
}

fn rerun(
    req: &VerifyRequest,
    key_file: &Path,
    findings: &Findings,
    p: &vigie_analyze::findings::Provenance,
) -> anyhow::Result<Vec<Check>> {
    let mut checks = Vec::new();
    if req.inputs.is_empty() {
        return Ok(vec![fail("re-run: give the inputs (--input) to run the audit again")]);
    }
    let pseudo = vigie_ingest::pseudo::Pseudonymiser::from_private_key_file(key_file, true)?;
    if pseudo.fingerprint() != p.key_fingerprint {
        return Ok(vec![fail(format!(
            "re-run: {} is not the key of the run (fingerprint {} against {})",
            key_file.display(),
            pseudo.fingerprint(),
            p.key_fingerprint
        ))]);
    }
    let policy: vigie_analyze::policy::Policy = toml::from_str(&p.policy.resolved)
        .map_err(|e| anyhow::anyhow!("the recorded policy does not read: {e}"))?;
    let employer = match (&p.employer_sha256, &req.employer) {
        (None, _) => None,
        (Some(_), None) => {
            return Ok(vec![fail("re-run: the run had an employer declaration: give it (--employer)")]);
        }
        (Some(want), Some(file)) => {
            if &sha256_of(file)? != want {
                return Ok(vec![fail(format!(
                    "re-run: {} is not the employer declaration of the run",
                    file.display()
                ))]);
            }
            Some(vigie_analyze::employer::Employer::from_file(file)?)
        }
    };
    let mapping = match (&p.mapping_sha256, &req.mapping) {
        (None, _) => None,
        (Some(_), None) => return Ok(vec![fail("re-run: the run used a mapping: give it (--mapping)")]),
        (Some(want), Some(file)) => {
            let (m, sha) =
                vigie_ingest::mapping::Mapping::from_file(file).map_err(|e| anyhow::anyhow!(e.join("\n")))?;
            if &hex(&sha) != want {
                return Ok(vec![fail(format!("re-run: {} is not the mapping of the run", file.display()))]);
            }
            Some((m, sha))
        }
    };
    let work = tempfile_dir(&req.out)?;
    let setup = crate::audit::AuditSetup {
        policy,
        employer,
        pseudo,
        out: work.clone(),
        lang: "en".into(),
        rejects_cap_bytes: vigie_ingest::rejects::DEFAULT_REJECTS_CAP_BYTES,
        mapping,
        sources: crate::audit::Sources {
            policy_file_sha256: p.policy.file_sha256.clone(),
            employer_sha256: p.employer_sha256.clone(),
        },
    };
    let inputs = req.inputs.clone();
    let expected = inputs.iter().map(|i| vigie_ingest::reader::estimate_events(i)).sum();
    let outcome = crate::audit::run(setup, expected, |ing, m| crate::audit::feed_files(&inputs, ing, m));
    let _ = std::fs::remove_dir_all(&work);
    let again = outcome?.findings;
    let (a, b) = (comparable(findings)?, comparable(&again)?);
    if a == b {
        checks.push(pass("re-run: the audit gives the same findings.json (apart from generated_at and the file names as typed)"));
    } else {
        let line = a.lines().zip(b.lines()).position(|(x, y)| x != y).unwrap_or(0) + 1;
        checks.push(fail(format!(
            "re-run: the findings DIFFER from line {line}: `{}` now `{}`",
            a.lines().nth(line - 1).unwrap_or("").trim(),
            b.lines().nth(line - 1).unwrap_or("").trim()
        )));
    }
    Ok(checks)
}

/// A scratch folder for the second run (removed after it).
fn tempfile_dir(_out: &Path) -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("vigie-verify-{}", std::process::id()));
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    Ok(dir)
}
