//! The audit path shared by `vigie audit` and `vigie demo`: records in,
//! through the door (validation, pseudonymisation, de-duplication) into a
//! bucketed spill, shifts and findings out, then the spill is purged.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};
use vigie_analyze::employer::Employer;
use vigie_analyze::findings::{Findings, InputFile, InputSummary, KeyUse, PolicySource, Provenance};
use vigie_analyze::policy::Policy;
use vigie_analyze::rules::{self, Evaluation};
use vigie_ingest::pseudo::Pseudonymiser;
use vigie_ingest::rejects::FileRejects;
use vigie_ingest::store::{buckets_for, Durability, SpillWriter, DEFAULT_ROWS_PER_FILE};
use vigie_ingest::{IngestError, IngestStats, Ingestor};

/// The door as the audit uses it.
pub type AuditIngestor = Ingestor<SpillWriter, FileRejects>;

/// What an audit needs besides its records.
pub struct AuditSetup {
    pub policy: Policy,
    pub employer: Option<Employer>,
    pub pseudo: Pseudonymiser,
    pub out: PathBuf,
    /// Report language (`fr` or `en`).
    pub lang: String,
    /// Bytes the rejects store keeps at most.
    pub rejects_cap_bytes: u64,
    /// The mapping the files are read through, and its file's SHA-256.
    pub mapping: Option<(vigie_ingest::mapping::Mapping, [u8; 32])>,
    /// Hashes of the policy and employer files, for the provenance.
    pub sources: Sources,
}

/// The files an audit's settings came from, by hash (docs/custody.md),
/// and, for `vigie verify`'s second run, the time of the first.
#[derive(Debug, Default, Clone)]
pub struct Sources {
    pub policy_file_sha256: Option<String>,
    pub employer_sha256: Option<String>,
    /// Written as findings.json's `generated_at` instead of now.
    pub generated_at: Option<String>,
}

/// What feeding the door read.
#[derive(Debug, Default)]
pub struct Fed {
    pub files: Vec<String>,
    /// Each file with its size, hash and record counts.
    pub inputs: Vec<InputFile>,
    /// What reading through the mapping saw, when there was one.
    pub mapping: Option<vigie_ingest::mapping::MappingStats>,
    /// Each file's valid records, by sequence number (their duplicates are
    /// counted after the read).
    pub seq_ranges: Vec<std::ops::Range<u64>>,
}

/// What an audit produced.
pub struct AuditOutcome {
    pub findings: Findings,
    pub evaluation: Evaluation,
    pub stats: IngestStats,
    /// The files written, relative to the output folder (for the
    /// manifest).
    pub written: Vec<String>,
}

/// What every provenance records, the audit's and the service's: this
/// build, the policy resolved (and its file's hash), the employer's
/// declaration's hash and the key's fingerprint.
pub fn base_provenance(
    policy: &Policy,
    policy_file_sha256: Option<String>,
    employer_sha256: Option<String>,
    key_fingerprint: String,
) -> Provenance {
    Provenance {
        vigie_version: env!("CARGO_PKG_VERSION").to_string(),
        source_revision: env!("VIGIE_SOURCE_REVISION").to_string(),
        policy: PolicySource {
            name: policy.name.clone(),
            file_sha256: policy_file_sha256,
            resolved: policy.to_toml(),
        },
        employer_sha256,
        k: policy.k,
        key_fingerprint,
        ..Default::default()
    }
}

/// The provenance of an audit's findings.
fn provenance(setup: &AuditSetup, inputs: Vec<InputFile>, fingerprint: String) -> Provenance {
    Provenance {
        inputs,
        mapping_sha256: setup.mapping.as_ref().map(|(_, sha)| vigie_ingest::hex(sha)),
        report_language: setup.lang.clone(),
        rejects_cap_bytes: setup.rejects_cap_bytes,
        ..base_provenance(
            &setup.policy,
            setup.sources.policy_file_sha256.clone(),
            setup.sources.employer_sha256.clone(),
            fingerprint,
        )
    }
}

/// Removes the spill when the audit ends, whatever the outcome: raw
/// events never outlive the run.
struct Purge(PathBuf);

impl Drop for Purge {
    fn drop(&mut self) {
        if self.0.exists() {
            if let Err(e) = std::fs::remove_dir_all(&self.0) {
                tracing::error!(path = %self.0.display(), error = %e, "Could not purge the spill");
            }
        }
    }
}

/// Creates a folder only its owner can enter (0700).
fn private_dir(dir: &Path) -> anyhow::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir).map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))
}

/// SIGINT and SIGTERM during an audit: the spill is removed before the
/// process exits (code 130), so an interrupted run leaves no raw events.
pub mod interrupt {
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Mutex, OnceLock};

    static SPILLS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
    static WATCHER: OnceLock<()> = OnceLock::new();
    /// Set while a caller (`demo --serve`) handles the signals itself.
    pub static HANDLED_ELSEWHERE: AtomicBool = AtomicBool::new(false);

    /// Registers a spill folder for the time the guard lives.
    pub struct Watch(PathBuf);

    impl Watch {
        pub fn spill(dir: PathBuf) -> Watch {
            WATCHER.get_or_init(|| {
                let _ = std::thread::Builder::new().name("vigie-signals".into()).spawn(watch);
            });
            SPILLS.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(dir.clone());
            Watch(dir)
        }
    }

    impl Drop for Watch {
        fn drop(&mut self) {
            SPILLS.lock().unwrap_or_else(std::sync::PoisonError::into_inner).retain(|d| *d != self.0);
        }
    }

    /// Set once a signal is being handled: the run's own threads may then
    /// fail on a spill that is gone, and must leave the exit to the
    /// watcher (see [`pending`]).
    static PURGING: AtomicBool = AtomicBool::new(false);

    /// True while an interrupted run is being purged: an error the run
    /// meets now is a consequence, and the process exits with 130.
    pub fn pending() -> bool {
        PURGING.load(Ordering::SeqCst)
    }

    pub use vigie_ingest::store::{remove_scratch as purge, scratch_tombstone as tombstone};

    fn watch() {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
        loop {
            rt.block_on(crate::shutdown::signal());
            let spills: Vec<PathBuf> =
                SPILLS.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
            if spills.is_empty() && HANDLED_ELSEWHERE.load(Ordering::SeqCst) {
                continue;
            }
            PURGING.store(true, Ordering::SeqCst);
            for d in &spills {
                purge(d);
            }
            eprintln!("vigie: interrupted; the spill was removed");
            std::process::exit(130);
        }
    }
}

/// A progress bar on a terminal, nothing otherwise.
pub fn progress_bar(len: u64, what: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template("{msg:>12} [{bar:40}] {percent:>3}% {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    pb.set_message(what.to_string());
    pb
}

fn rfc3339(us: Option<i64>) -> Option<String> {
    us.and_then(chrono::DateTime::from_timestamp_micros)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

/// Runs an audit. `feed` hands every record to the ingestor and returns
/// the names of its sources; `expected_events` (an estimate) sizes the
/// spill.
pub fn run(
    setup: AuditSetup,
    expected_events: u64,
    feed: impl FnOnce(&mut AuditIngestor, Option<&vigie_ingest::mapping::Mapping>) -> Result<Fed, IngestError>,
) -> anyhow::Result<AuditOutcome> {
    let out = &setup.out;
    std::fs::create_dir_all(out).map_err(|e| anyhow::anyhow!("cannot create {}: {e}", out.display()))?;
    let work = out.join(".vigie-work");
    for left in [work.clone(), interrupt::tombstone(&work)] {
        if left.exists() {
            // The spill of a run that was killed (kill -9, power loss).
            tracing::warn!(path = %left.display(), "Removing the spill of an interrupted run");
            std::fs::remove_dir_all(&left)?;
        }
    }
    private_dir(&work)?;
    let _purge = Purge(work.clone());
    let _watch = interrupt::Watch::spill(work.clone());
    // The spill is scratch: it is deleted at the end of the run.
    let spill = SpillWriter::new(
        work.join("events"),
        buckets_for(expected_events),
        DEFAULT_ROWS_PER_FILE,
        Durability::Scratch,
    )?;
    let rejects_path = out.join("rejects.ndjson");
    if rejects_path.exists() {
        std::fs::remove_file(&rejects_path)?;
    }
    crate::custody::clear_previous(out)?;
    let ephemeral = setup.pseudo.ephemeral;
    let mut provenance = provenance(&setup, Vec::new(), setup.pseudo.fingerprint());
    let rejects = FileRejects::new(&rejects_path).with_cap(setup.rejects_cap_bytes);
    let mut ing = Ingestor::new(setup.pseudo, None, spill, rejects);
    // Repeated event ids are found after the read, from partition files
    // (vigie_ingest::dedup): the door's memory does not grow with the
    // input.
    ing.defer_duplicates(&work.join("ids"), vigie_ingest::dedup::partitions_for(expected_events))?;
    let started = std::time::Instant::now();
    let phase = |what: &str, since: &mut std::time::Instant| {
        tracing::debug!(
            phase = what,
            seconds = format!("{:.2}", since.elapsed().as_secs_f64()),
            "Audit phase done"
        );
        *since = std::time::Instant::now();
    };
    let mut since = started;
    let fed = feed(&mut ing, setup.mapping.as_ref().map(|(m, _)| m))?;
    phase("read and check", &mut since);
    let buckets_n = ing.sink.buckets();
    let resolved = ing.resolve_duplicates(buckets_n)?;
    phase("duplicates", &mut since);
    let files = fed.files;
    provenance.inputs = fed.inputs;
    if let Some(r) = &resolved {
        // Each file's records kept and repeated, now that they are known.
        for (input, range) in provenance.inputs.iter_mut().zip(&fed.seq_ranges) {
            let d = r.duplicates_in(range.clone());
            input.accepted -= d;
            input.duplicates += d;
        }
    }
    let mapping = match (&setup.mapping, fed.mapping) {
        (Some((m, sha)), Some(ms)) => Some(vigie_analyze::findings::MappingSummary {
            name: m.name.clone(),
            sha256: vigie_ingest::hex(sha),
            unmapped_codes: ms.unmapped_codes,
            dst_ambiguous: ms.dst_ambiguous,
            dst_nonexistent: ms.dst_nonexistent,
        }),
        _ => None,
    };
    let (spill, rejects, stats) = ing.finish()?;
    let rejects_not_kept = rejects.not_kept();
    let buckets: Vec<PathBuf> = spill.finish()?;
    if let Some(r) = &resolved {
        vigie_ingest::dedup::write_dropped(&buckets, r, buckets_n)?;
    }
    phase("spill", &mut since);
    tracing::info!(
        events = stats.accepted,
        rejected = stats.rejected_total(),
        duplicates = stats.duplicates,
        "Input read"
    );

    let pb = progress_bar(buckets.len() as u64, "analysing");
    let model = setup.policy.shift_model();
    let shifts = vigie_analyze::store_shifts(&buckets, &model, |i| pb.set_position(i as u64))?;
    pb.finish_and_clear();
    phase("shifts", &mut since);
    let evaluation = rules::evaluate(&shifts, &setup.policy, setup.employer.as_ref());
    drop(shifts);
    phase("rules", &mut since);

    let input = InputSummary {
        events: stats.accepted,
        rejected: stats.rejected_total(),
        rejected_by_reason: stats.rejected_by_reason().into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        duplicates: stats.duplicates,
        from: rfc3339(stats.min_ts_us),
        to: rfc3339(stats.max_ts_us),
        sites: stats.sites.iter().cloned().collect(),
        records_with_dropped_fields: stats.records_with_dropped_fields,
        dropped_fields: stats.dropped_fields.clone(),
        files,
        rejects_not_kept,
        mapping,
        ..Default::default()
    };
    let key = if ephemeral { KeyUse::RandomForThisRun } else { KeyUse::FromFile };
    let findings = Findings::assemble(
        &setup.policy,
        &evaluation,
        input,
        key,
        setup.sources.generated_at.clone(),
        provenance,
        Vec::new(),
    );
    write_atomic(&out.join("findings.json"), findings.to_json().as_bytes())?;
    let aggregates = vigie_analyze::aggregates::write(&evaluation, &out.join("aggregates"))?;
    let html = crate::report::render(&findings, &evaluation, &setup.policy, &setup.lang);
    write_atomic(&out.join("report.html"), html.as_bytes())?;
    let mut written = vec!["findings.json".to_string(), "report.html".to_string()];
    written.extend(aggregates.iter().map(|n| format!("aggregates/{n}")));
    if rejects_path.exists() {
        written.push("rejects.ndjson".into());
    }
    phase("outputs", &mut since);
    Ok(AuditOutcome { findings, evaluation, stats, written })
}

/// Writes a file under a temporary name, fsynced, then renames it: a
/// reader finds the whole file or the previous one, never a part (a full
/// disk included: the temporary file is removed).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    Ok(vigie_ingest::store::write_bytes_atomic(path, bytes, vigie_ingest::store::Durability::Synced)?)
}

/// Reads every input file into the ingestor, through the mapping when
/// there is one.
pub fn feed_files(
    inputs: &[PathBuf],
    ing: &mut AuditIngestor,
    mapping: Option<&vigie_ingest::mapping::Mapping>,
) -> Result<Fed, IngestError> {
    feed_files_as(inputs, None, ing, mapping)
}

/// [`feed_files`], recording the inputs under `recorded` names (in the provenance)
/// rather than their own file names: `vigie verify` repeats a run from
/// copies of its inputs.
pub fn feed_files_as(
    inputs: &[PathBuf],
    recorded: Option<&[String]>,
    ing: &mut AuditIngestor,
    mapping: Option<&vigie_ingest::mapping::Mapping>,
) -> Result<Fed, IngestError> {
    let mut mapper = mapping.map(|m| vigie_ingest::mapping::Mapper::new(m.clone()));
    let total: u64 = inputs.iter().map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)).sum();
    let pb = progress_bar(total.max(1), "reading");
    let mut done = 0u64;
    let mut names = Vec::new();
    let mut files = Vec::new();
    let mut seq_ranges = Vec::new();
    for (n, path) in inputs.iter().enumerate() {
        let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        let mut progress = |f: f64| pb.set_position(done + (f * size as f64) as u64);
        let before = ing.stats.clone();
        let first_seq = ing.next_seq();
        let digest = match mapper.as_mut() {
            Some(m) => vigie_ingest::reader::read_mapped_file(path, m, ing, &mut progress)?,
            None => vigie_ingest::reader::read_file(path, ing, &mut progress)?,
        };
        let now = &ing.stats;
        files.push(InputFile {
            name: match recorded.and_then(|ns| ns.get(n)) {
                Some(name) => name.clone(),
                None => path
                    .file_name()
                    .map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned()),
            },
            bytes: digest.bytes,
            sha256: digest.hex(),
            records: now.records - before.records,
            accepted: now.accepted - before.accepted,
            rejected: now.rejected_total() - before.rejected_total(),
            duplicates: now.duplicates - before.duplicates,
        });
        seq_ranges.push(first_seq..ing.next_seq());
        done += size;
        names.push(path.display().to_string());
    }
    pb.finish_and_clear();
    Ok(Fed { files: names, inputs: files, mapping: mapper.map(|m| m.stats), seq_ranges })
}

/// The summary table printed after an audit: every finding that is not
/// `ok`, then a count of those that are.
pub fn summary_table(f: &Findings) -> String {
    let mut out = String::new();
    let i = &f.input;
    out.push_str(&format!(
        "{} events accepted, {} rejected, {} duplicates dropped; sites: {}\n",
        i.events,
        i.rejected,
        i.duplicates,
        i.sites.join(", ")
    ));
    out.push_str(&format!(
        "k = {}; {} group-periods withheld for privacy\n\n",
        f.privacy.k, f.privacy.suppressed_groups
    ));
    out.push_str(&format!(
        "{:<29} {:<18} {:<9} {:<17} {:>10} {:>9}\n",
        "rule", "group", "period", "status", "observed", "threshold"
    ));
    let mut ok = 0;
    for x in &f.findings {
        if x.status == vigie_analyze::findings::Status::Ok {
            ok += 1;
            continue;
        }
        let obs = x.observed.map(|o| format!("{o}")).unwrap_or_else(|| "-".into());
        out.push_str(&format!(
            "{:<29} {:<18} {:<9} {:<17} {:>10} {:>9}\n",
            x.rule,
            x.group,
            x.period,
            x.status.as_str(),
            obs,
            x.threshold
        ));
    }
    out.push_str(&format!("\n{ok} more findings are ok (see findings.json).\n"));
    out
}
