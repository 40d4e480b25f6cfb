//! Chain of custody (docs/custody.md): the manifest of an output folder,
//! its optional signature in OpenSSH's format, and `vigie verify`, which
//! checks a folder against them, the inputs against the provenance in
//! findings.json, and can run the audit again to show that it gives the
//! same findings.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
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

/// Size and SHA-256 (hexadecimal) of a file, streamed (the readers' own
/// hashing, `vigie_ingest::reader::hash_file`).
pub fn sha256_file(path: &Path) -> Result<(u64, String), vigie_ingest::IngestError> {
    vigie_ingest::reader::hash_file(path).map(|d| (d.bytes, d.hex()))
}

/// The hex SHA-256 of a file's bytes, for provenance.
pub fn sha256_of(path: &Path) -> anyhow::Result<String> {
    Ok(sha256_file(path)?.1)
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
        let (bytes, sha256) = sha256_file(&out.join(&f))?;
        entries.push(Entry { path: f, bytes, sha256 });
    }
    let m = Manifest { schema: MANIFEST_SCHEMA.into(), files: entries };
    let mut text = serde_json::to_string_pretty(&m)?;
    text.push('\n');
    crate::audit::write_atomic(&out.join(MANIFEST), text.as_bytes())?;
    Ok(m)
}

/// Reads an OpenSSH Ed25519 private key that vigie can sign with
/// (unencrypted), or says why not.
pub fn signing_key(key_file: &Path) -> anyhow::Result<ssh_key::PrivateKey> {
    let key = ssh_key::PrivateKey::read_openssh_file(key_file).map_err(|e| {
        anyhow::anyhow!("--sign-key {}: not an OpenSSH private key ({e})", key_file.display())
    })?;
    if key.is_encrypted() {
        anyhow::bail!(
            "--sign-key {}: the key is protected by a passphrase, which vigie cannot ask for; sign with an unencrypted key kept offline, or sign manifest.json with `ssh-keygen -Y sign -n {NAMESPACE}`",
            key_file.display()
        );
    }
    if key.algorithm() != ssh_key::Algorithm::Ed25519 {
        anyhow::bail!(
            "--sign-key {}: an Ed25519 key is needed (ssh-keygen -t ed25519), not {}",
            key_file.display(),
            key.algorithm()
        );
    }
    Ok(key)
}

/// Signs `OUT/manifest.json` with an OpenSSH Ed25519 private key (an
/// unencrypted `ssh-keygen -t ed25519` key) and writes
/// `OUT/manifest.json.sig`. Returns the signing key's fingerprint.
pub fn sign(out: &Path, key_file: &Path) -> anyhow::Result<String> {
    let key = signing_key(key_file)?;
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

/// The entries of `dir`, relative to it (with `/`), recursively, without
/// following symbolic links (a link is listed as itself); and the folders
/// that could not be read.
fn listing(dir: &Path) -> (Vec<String>, Vec<String>) {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>, unreadable: &mut Vec<String>) {
        let rel = |p: &Path| p.strip_prefix(root).map(|r| r.to_string_lossy().replace('\\', "/")).ok();
        let Ok(rd) = std::fs::read_dir(dir) else {
            unreadable.extend(rel(dir));
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => walk(root, &p, out, unreadable),
                _ => out.extend(rel(&p)),
            }
        }
    }
    let (mut out, mut unreadable) = (Vec::new(), Vec::new());
    walk(dir, dir, &mut out, &mut unreadable);
    out.sort();
    (out, unreadable)
}

/// Whether a manifest path names a file inside the folder: relative, with
/// plain components only (no `..`, no root, no `.`).
fn inside(path: &str) -> bool {
    let p = Path::new(path);
    !path.is_empty() && p.components().all(|c| matches!(c, std::path::Component::Normal(_)))
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
    if manifest.schema != MANIFEST_SCHEMA {
        checks.push(fail(format!("manifest: schema {:?}, not {MANIFEST_SCHEMA}", manifest.schema)));
    }

    // 1. The signature, first: it says whether the manifest itself can be
    //    trusted. Without a public key, a signature is still checked with
    //    the key it names, so that a manifest rewritten after signing is
    //    found; who that key belongs to is for --pub-key to say.
    let sig_path = out.join(SIGNATURE);
    match (&req.pub_key, sig_path.exists()) {
        (Some(k), true) => checks.push(check_signature(&manifest_bytes, &sig_path, Some(k))),
        (Some(_), false) => {
            checks.push(fail(format!("signature: {SIGNATURE} is missing, but a public key was given")));
        }
        (None, true) => checks.push(check_signature(&manifest_bytes, &sig_path, None)),
        (None, false) => checks.push(pass(
            "unsigned: the manifest shows accidental changes; anyone who can rewrite the folder can rewrite it too (sign with --sign-key)",
        )),
    }

    // 2. Every file against the manifest: inside the folder, a regular
    //    file, of the size and hash listed. findings.json and report.html
    //    must be listed.
    for required in ["findings.json", "report.html"] {
        if !manifest.files.iter().any(|e| e.path == required) {
            checks.push(fail(format!("{required}: not in the manifest")));
        }
    }
    for e in &manifest.files {
        if !inside(&e.path) {
            checks.push(fail(format!("{:?}: a path outside the folder, refused", e.path)));
            continue;
        }
        let p = out.join(&e.path);
        match std::fs::symlink_metadata(&p) {
            Ok(m) if !m.file_type().is_file() => {
                checks.push(fail(format!("{}: not a regular file", e.path)));
                continue;
            }
            Err(err) => {
                checks.push(fail(format!("{}: MISSING ({err})", e.path)));
                continue;
            }
            Ok(_) => {}
        }
        match sha256_file(&p) {
            Ok((bytes, sha)) if sha == e.sha256 && bytes == e.bytes => {
                checks.push(pass(format!("{}: matches the manifest", e.path)));
            }
            Ok(_) => checks.push(fail(format!("{}: CHANGED since the manifest was written", e.path))),
            Err(err) => checks.push(fail(format!("{}: unreadable ({err})", e.path))),
        }
    }
    let listed: std::collections::BTreeSet<&str> = manifest.files.iter().map(|e| e.path.as_str()).collect();
    let (present, unreadable) = listing(out);
    for f in present {
        if f != MANIFEST && f != SIGNATURE && !listed.contains(f.as_str()) {
            checks
                .push(fail(format!("{f}: not in the manifest (added after the run, or by another program)")));
        }
    }
    for d in unreadable {
        checks.push(fail(format!("{d}/: a folder that cannot be read")));
    }

    // 3. The inputs against the provenance: each one given is one the run
    //    read, and every one the run read is given.
    let findings_text = std::fs::read(out.join("findings.json")).ok();
    let findings: Option<Findings> = findings_text.as_ref().and_then(|b| serde_json::from_slice(b).ok());
    let provenance = findings.as_ref().and_then(|f| f.provenance.clone());
    let mut matched: Vec<Option<PathBuf>> =
        provenance.as_ref().map_or_else(Vec::new, |p| vec![None; p.inputs.len()]);
    if !req.inputs.is_empty() {
        match &provenance {
            None => checks.push(fail("findings.json has no provenance: inputs cannot be checked")),
            Some(p) => {
                for input in &req.inputs {
                    let shown = input.display();
                    let (bytes, sha) = match sha256_file(input) {
                        Ok(x) => x,
                        Err(e) => {
                            checks.push(fail(format!("input: unreadable ({e})")));
                            continue;
                        }
                    };
                    match p.inputs.iter().position(|i| i.sha256 == sha && i.bytes == bytes) {
                        Some(k) => {
                            matched[k] = Some(input.clone());
                            checks.push(pass(format!(
                                "input {shown}: is `{}` of the run (sha256 {sha})",
                                p.inputs[k].name
                            )));
                        }
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
                for (i, m) in p.inputs.iter().zip(&matched) {
                    if m.is_none() {
                        checks.push(fail(format!(
                            "input `{}` of the run (sha256 {}) was not given: give every input",
                            i.name, i.sha256
                        )));
                    }
                }
            }
        }
    }

    // 4. The audit again, with the recorded settings and the same key.
    if let Some(key) = &req.rerun_key {
        match (&findings, &provenance) {
            (Some(f), Some(p)) if matched.iter().all(Option::is_some) && !matched.is_empty() => {
                let inputs: Vec<PathBuf> = matched.into_iter().flatten().collect();
                match rerun(req, key, f, p, &inputs, &manifest) {
                    Ok(c) => checks.extend(c),
                    Err(e) => checks.push(fail(format!("re-run: could not run the audit again: {e:#}"))),
                }
            }
            (Some(_), Some(_)) => checks.push(fail("re-run: not made, every input of the run is needed")),
            _ => {
                checks
                    .push(fail("findings.json is missing or has no provenance: the run cannot be repeated"));
            }
        }
    }
    Ok(checks)
}

fn check_signature(manifest: &[u8], sig_path: &Path, pub_key: Option<&Path>) -> Check {
    let sig = match std::fs::read_to_string(sig_path)
        .map_err(|e| e.to_string())
        .and_then(|t| ssh_key::SshSig::from_pem(t.as_bytes()).map_err(|e| e.to_string()))
    {
        Ok(s) => s,
        Err(e) => return fail(format!("signature: {SIGNATURE} does not read ({e})")),
    };
    if sig.namespace() != NAMESPACE {
        return fail(format!(
            "signature: made for another purpose (namespace {:?}, not {NAMESPACE:?})",
            sig.namespace()
        ));
    }
    let signer = ssh_key::PublicKey::from(sig.public_key().clone());
    if signer.algorithm() != ssh_key::Algorithm::Ed25519 {
        return fail(format!(
            "signature: made with a {} key, which vigie cannot check (ssh-keygen -Y verify can)",
            signer.algorithm()
        ));
    }
    let key = match pub_key {
        Some(p) => match ssh_key::PublicKey::read_openssh_file(p) {
            Ok(k) => {
                if sig.public_key() != k.key_data() {
                    return fail(format!(
                        "signature: made with another key ({}) than {} ({})",
                        signer.fingerprint(ssh_key::HashAlg::Sha256),
                        p.display(),
                        k.fingerprint(ssh_key::HashAlg::Sha256)
                    ));
                }
                k
            }
            Err(e) => return fail(format!("signature: {} is not an OpenSSH public key ({e})", p.display())),
        },
        None => signer,
    };
    let fp = key.fingerprint(ssh_key::HashAlg::Sha256);
    match (key.verify(NAMESPACE, manifest, &sig), pub_key) {
        (Ok(()), Some(_)) => pass(format!("signature: good, by {fp}")),
        (Ok(()), None) => pass(format!(
            "signature: good, by the key it names, {fp} (give --pub-key to check that it is the signer's)"
        )),
        (Err(_), _) => fail(format!("signature: BAD for {fp} (the manifest was changed after signing)")),
    }
}

/// findings.json as JSON (unknown fields kept), with what may differ
/// between two runs of the same audit blanked: the paths as typed, the
/// inputs' names (copies may be named otherwise), and, when the versions
/// differ, the version.
fn comparable(text: &[u8], blank_version: bool) -> anyhow::Result<serde_json::Value> {
    let mut v: serde_json::Value = serde_json::from_slice(text)?;
    v["input"]["files"] = serde_json::Value::Null;
    if let Some(inputs) = v["provenance"]["inputs"].as_array_mut() {
        for i in inputs {
            i["name"] = serde_json::Value::Null;
        }
    }
    if blank_version {
        v["provenance"]["vigie_version"] = serde_json::Value::Null;
        v["provenance"]["source_revision"] = serde_json::Value::Null;
    }
    Ok(v)
}

fn rerun(
    req: &VerifyRequest,
    key_file: &Path,
    findings: &Findings,
    p: &vigie_analyze::findings::Provenance,
    inputs: &[PathBuf],
    manifest: &Manifest,
) -> anyhow::Result<Vec<Check>> {
    let mut checks = Vec::new();
    let pseudo = vigie_ingest::pseudo::Pseudonymiser::from_private_key_file(key_file, true)?;
    // 600,000 HMACs: computed once.
    let fingerprint = pseudo.fingerprint();
    if fingerprint != p.key_fingerprint {
        return Ok(vec![fail(format!(
            "re-run: {} is not the key of the run (fingerprint {fingerprint} against {})",
            key_file.display(),
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
            if &vigie_ingest::hex(&sha) != want {
                return Ok(vec![fail(format!("re-run: {} is not the mapping of the run", file.display()))]);
            }
            Some((m, sha))
        }
    };
    let same_version =
        p.vigie_version == env!("CARGO_PKG_VERSION") && p.source_revision == env!("VIGIE_SOURCE_REVISION");
    if !same_version {
        checks.push(pass(format!(
            "re-run: made by vigie {} ({}), the run by vigie {} ({}): the version is not compared, nor report.html and the Parquet files",
            env!("CARGO_PKG_VERSION"),
            env!("VIGIE_SOURCE_REVISION"),
            p.vigie_version,
            p.source_revision
        )));
    }
    // A private scratch folder (0700, a name no one can guess), removed
    // after the run, and on an interrupt.
    let work = tempfile::Builder::new().prefix("vigie-verify-").tempdir()?;
    let out = work.path().join("out");
    let _watch = crate::audit::interrupt::Watch::spill(work.path().to_path_buf());
    let setup = crate::audit::AuditSetup {
        policy,
        employer,
        pseudo,
        out: out.clone(),
        lang: if p.report_language.is_empty() { "en".into() } else { p.report_language.clone() },
        rejects_cap_bytes: if p.rejects_cap_bytes == 0 {
            vigie_ingest::rejects::DEFAULT_REJECTS_CAP_BYTES
        } else {
            p.rejects_cap_bytes
        },
        mapping,
        sources: crate::audit::Sources {
            policy_file_sha256: p.policy.file_sha256.clone(),
            employer_sha256: p.employer_sha256.clone(),
            generated_at: Some(findings.generated_at.clone()),
        },
    };
    let names: Vec<String> = p.inputs.iter().map(|i| i.name.clone()).collect();
    let expected = inputs.iter().map(|i| vigie_ingest::reader::estimate_events(i)).sum();
    crate::audit::run(setup, expected, |ing, m| crate::audit::feed_files_as(inputs, Some(&names), ing, m))?;
    // Every file of the manifest, made again: findings.json compared as
    // JSON (see `comparable`), the others byte for byte.
    let mut differ = Vec::new();
    for e in &manifest.files {
        if e.path == "report.pdf" || !inside(&e.path) {
            continue;
        }
        let parquet = e.path.ends_with(".parquet");
        if !same_version && (e.path == "report.html" || parquet) {
            continue;
        }
        let (a, b) = (std::fs::read(req.out.join(&e.path)), std::fs::read(out.join(&e.path)));
        let same = match (a, b) {
            (Ok(a), Ok(b)) if e.path == "findings.json" => comparable(&a, !same_version)
                .ok()
                .zip(comparable(&b, !same_version).ok())
                .is_some_and(|(x, y)| x == y),
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        };
        if !same {
            differ.push(e.path.clone());
        }
    }
    if differ.is_empty() {
        checks.push(pass(
            "re-run: the audit made again gives the same files (findings.json apart from the paths and names as typed)",
        ));
    } else {
        checks.push(fail(format!("re-run: the audit made again DIFFERS in {}", differ.join(", "))));
    }
    Ok(checks)
}
