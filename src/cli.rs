//! The command line (docs/cli.md). Exit codes: 0 done, 1 could not run,
//! 2 bad argument or configuration.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use vigie_analyze::employer::Employer;
use vigie_analyze::policy::Policy;
use vigie_ingest::pseudo::{NoKeyFile, Pseudonymiser};

use crate::audit::{self, AuditSetup};
use crate::generate::{Scenario, SiteSpec};

#[derive(Parser, Debug)]
#[command(
    name = "vigie",
    version,
    about = "Audit how software paces warehouse work, without becoming the surveillance it audits."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the whole pipeline on a built-in synthetic site.
    Demo(DemoArgs),
    /// Audit export files (NDJSON/JSONL, CSV, each optionally .gz, or Parquet).
    Audit(AuditArgs),
    /// Write synthetic events (NDJSON, .ndjson.gz, or Parquet by extension).
    Generate(GenerateArgs),
    /// Run the long-running Kafka ingestion service.
    Ingest(IngestArgs),
    /// Check a policy file and report every problem at once.
    CheckPolicy(CheckPolicyArgs),
    /// Check a mapping file and report every problem at once.
    CheckMapping(CheckMappingArgs),
    /// Look at an employer's CSV export and draft a mapping for it.
    Inspect(InspectArgs),
    /// Print the rule catalogue: each rule, how the law counts it, and its
    /// status, threshold and sources in each profile.
    Rules(RulesArgs),
    /// Work on the service's store.
    #[command(subcommand)]
    Store(StoreCommand),
    /// Ask a running vigie whether it is alive (/healthz) or ready
    /// (/readyz): exit 0 on 200, 1 otherwise (a container's health check;
    /// the image has no curl).
    Probe(ProbeArgs),
    /// Check an audit's output folder: its files against the manifest, the
    /// signature, the inputs against the provenance, and (with the key)
    /// the audit run again; exit 0 when everything verifies, 1 otherwise.
    Verify(VerifyArgs),
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// The output folder of `vigie audit` (or `vigie demo`).
    pub out: PathBuf,
    /// The input files, to check them against the provenance.
    #[arg(long, num_args = 1.., value_name = "PATH")]
    pub input: Vec<PathBuf>,
    /// The OpenSSH public key (`.pub`) the manifest was signed with.
    #[arg(long, value_name = "FILE")]
    pub pub_key: Option<PathBuf>,
    /// The pseudonymisation key of the run: with the inputs, run the audit
    /// again under the recorded policy and compare the findings.
    #[arg(long, value_name = "FILE", requires = "input")]
    pub key_file: Option<PathBuf>,
    /// The run's employer declaration, for the second run.
    #[arg(long, value_name = "FILE", requires = "key_file")]
    pub employer: Option<PathBuf>,
    /// The run's mapping, for the second run.
    #[arg(long, value_name = "FILE", requires = "key_file")]
    pub mapping: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum StoreCommand {
    /// Read every file of every tier and report what cannot be trusted;
    /// exit 0 when clean, 1 when problems were found.
    Check(StoreCheckArgs),
}

#[derive(Args, Debug)]
pub struct StoreCheckArgs {
    /// The store (`store.path` of the service): a folder, or
    /// `s3://BUCKET/PREFIX` (its server from `--config` or the AWS
    /// environment variables).
    pub store: PathBuf,
    /// Quarantine what is bad and purge what is past retention (run it
    /// with the service stopped).
    #[arg(long)]
    pub repair: bool,
    /// The service's configuration, for the tiers' retention (default:
    /// the defaults of docs/service.md).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct PolicyArgs {
    /// Built-in policy profile: fr (default), eu, de or us-ca (`vigie rules`).
    #[arg(long, value_name = "NAME", conflicts_with = "policy")]
    pub profile: Option<String>,
    /// Policy file (TOML; see docs/policy.md).
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Report language: fr or en (default: the policy's).
    #[arg(long, value_parser = ["fr", "en"])]
    pub lang: Option<String>,
    /// Also print the report to report.pdf with headless Chromium.
    #[arg(long)]
    pub pdf: bool,
}

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Output directory.
    #[arg(long, default_value = "vigie-demo")]
    pub out: PathBuf,
    /// Keep serving /metrics on this address until interrupted (a bare
    /// port means 127.0.0.1).
    #[arg(long, value_name = "ADDR")]
    pub serve: Option<String>,
    /// With --serve: answer /metrics only with `Authorization: Bearer
    /// TOKEN`, the token being the first line of this file.
    #[arg(long, value_name = "FILE", requires = "serve")]
    pub bearer_token_file: Option<PathBuf>,
    #[command(flatten)]
    pub policy: PolicyArgs,
}

#[derive(Args, Debug)]
pub struct AuditArgs {
    /// Input files; the format comes from the extension.
    #[arg(long, required = true, num_args = 1.., value_name = "PATH")]
    pub input: Vec<PathBuf>,
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// The employer's declaration (TOML; see docs/employer.md).
    #[arg(long, value_name = "FILE")]
    pub employer: Option<PathBuf>,
    /// Pseudonymisation key (at least 32 bytes); else $VIGIE_KEY_FILE; else a random key for this run.
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
    /// Accept a key file that its group or others can read (refused
    /// otherwise: whoever reads the key can link pseudonyms to people).
    #[arg(long)]
    pub allow_shared_key: bool,
    /// Read the CSV inputs through this mapping (TOML; see
    /// docs/mapping.md): the export's own columns, codes, local times and
    /// dialect.
    #[arg(long, value_name = "FILE")]
    pub mapping: Option<PathBuf>,
    /// Most MiB of refused records kept in rejects.ndjson; past it they
    /// are counted (findings.json, input.rejects_not_kept), not kept.
    #[arg(long, value_name = "MIB", default_value_t = 64)]
    pub max_rejects_mib: u64,
    /// Output directory.
    #[arg(long, default_value = "vigie-audit")]
    pub out: PathBuf,
    /// Sign the output's manifest with this OpenSSH Ed25519 private key
    /// (`ssh-keygen -t ed25519`, without a passphrase); checked by `vigie
    /// verify --pub-key` or by `ssh-keygen -Y verify -n vigie`.
    #[arg(long, value_name = "FILE")]
    pub sign_key: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// Output file: .ndjson, .jsonl, .ndjson.gz or .parquet.
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = 100)]
    pub workers: u32,
    #[arg(long, default_value_t = 28)]
    pub days: u32,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    #[arg(long, value_enum, default_value_t = Scenario::Baseline)]
    pub scenario: Scenario,
    /// First day (YYYY-MM-DD; moved back to its Monday). Default 2026-03-02.
    #[arg(long, value_name = "DATE", conflicts_with = "recent")]
    pub start: Option<chrono::NaiveDate>,
    /// Data that end this week: the first day is the Monday on or before
    /// today (UTC) minus DAYS - 1, so the last is at most 6 days ago (for a
    /// live service, whose store purges old days).
    #[arg(long)]
    pub recent: bool,
}

#[derive(Args, Debug)]
pub struct ProbeArgs {
    /// The address vigie serves on (`[metrics] listen`).
    #[arg(long, default_value = "127.0.0.1:9464")]
    pub addr: String,
    /// The endpoint: /healthz (alive) or /readyz (ready).
    #[arg(long, default_value = "/healthz")]
    pub path: String,
}

#[derive(Args, Debug)]
pub struct IngestArgs {
    /// Service configuration (TOML; see docs/service.md).
    #[arg(long)]
    pub config: PathBuf,
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// The CSV export to look at.
    pub file: PathBuf,
    /// Write the draft mapping here (default: standard output).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Instead of drafting, read the file through this (completed)
    /// mapping and say how many records it would accept; nothing is
    /// written.
    #[arg(long = "try", value_name = "MAPPING", conflicts_with = "out")]
    pub try_mapping: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct CheckMappingArgs {
    /// The mapping file to check.
    pub file: PathBuf,
}

#[derive(Args, Debug)]
pub struct CheckPolicyArgs {
    /// The policy file to check.
    pub file: PathBuf,
}

#[derive(Args, Debug)]
pub struct RulesArgs {
    /// Only this profile's rules (fr, eu, de, us-ca), resolved as the
    /// analysis uses them.
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
    /// md: a Markdown table (docs/metrics.md carries it); json: every
    /// definition, text and source.
    #[arg(long, value_parser = ["md", "json"], default_value = "md")]
    pub format: String,
    /// Language of the texts and citations in the Markdown table.
    #[arg(long, value_parser = ["fr", "en"], default_value = "en")]
    pub lang: String,
}

/// Why a command failed, and so its exit code (docs/cli.md).
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The command line or a file it names cannot be used as given (a bad
    /// argument, configuration, policy, mapping or key): exit 2.
    #[error("{0}")]
    Usage(String),
    /// The run itself failed (an input that cannot be read, a store that
    /// cannot be written, a broker that refuses): exit 1.
    #[error("{0}")]
    Run(String),
}

impl Failure {
    pub fn usage(message: impl Into<String>) -> Self {
        Failure::Usage(message.into())
    }
    pub fn run(message: impl Into<String>) -> Self {
        Failure::Run(message.into())
    }

    /// The process's exit code.
    pub fn code(&self) -> i32 {
        match self {
            Failure::Usage(_) => 2,
            Failure::Run(_) => 1,
        }
    }
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::run(format!("{e:#}"))
    }
}

fn load_policy(p: &PolicyArgs) -> Result<(Policy, String), Failure> {
    let policy = match (&p.policy, &p.profile) {
        (Some(file), _) => Policy::from_file(file).map_err(|e| Failure::usage(e.to_string()))?,
        (None, Some(name)) => Policy::profile(name).map_err(|e| Failure::usage(e.to_string()))?,
        (None, None) => Policy::profile("fr").map_err(|e| Failure::usage(e.to_string()))?,
    };
    let lang = p.lang.clone().unwrap_or_else(|| policy.lang.clone());
    Ok((policy, lang))
}

fn load_key(flag: &Option<PathBuf>, allow_shared: bool) -> Result<Pseudonymiser, Failure> {
    Pseudonymiser::resolve(flag.as_deref(), allow_shared, NoKeyFile::Ephemeral)
        .map_err(|e| Failure::usage(e.to_string()))
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Audit(a) => {
            for p in &a.input {
                if !p.is_file() {
                    return Err(Failure::usage(format!("{}: no such file", p.display())));
                }
                vigie_ingest::reader::Format::from_path(p).map_err(|e| Failure::usage(e.to_string()))?;
            }
            if let Some(k) = &a.sign_key {
                if !k.is_file() {
                    return Err(Failure::usage(format!("--sign-key {}: no such file", k.display())));
                }
            }
            let (policy, lang) = load_policy(&a.policy)?;
            let employer = match &a.employer {
                Some(f) => Some(Employer::from_file(f).map_err(|e| Failure::usage(e.to_string()))?),
                None => None,
            };
            let hash = |f: &Option<PathBuf>| -> Result<Option<String>, Failure> {
                f.as_ref()
                    .map(|f| crate::custody::sha256_of(f).map_err(|e| Failure::usage(e.to_string())))
                    .transpose()
            };
            let sources = audit::Sources {
                policy_file_sha256: hash(&a.policy.policy)?,
                employer_sha256: hash(&a.employer)?,
                generated_at: None,
            };
            // A signing key that cannot sign is refused before the audit
            // runs, not after it.
            if let Some(k) = &a.sign_key {
                crate::custody::signing_key(k).map_err(|e| Failure::usage(e.to_string()))?;
            }
            let mapping = match &a.mapping {
                Some(f) => Some(
                    vigie_ingest::mapping::Mapping::from_file(f).map_err(|p| Failure::usage(p.join("\n")))?,
                ),
                None => None,
            };
            let pseudo = load_key(&a.key_file, a.allow_shared_key)?;
            let setup = AuditSetup {
                policy,
                employer,
                pseudo,
                out: a.out.clone(),
                lang,
                rejects_cap_bytes: a.max_rejects_mib.saturating_mul(1 << 20),
                mapping,
                sources,
            };
            let inputs = a.input.clone();
            let expected = inputs.iter().map(|p| vigie_ingest::reader::estimate_events(p)).sum();
            let outcome = audit::run(setup, expected, |ing, m| audit::feed_files(&inputs, ing, m))?;
            print_summary(&outcome, &a.out);
            let mut written = outcome.written.clone();
            written.extend(pdf_if_asked(a.policy.pdf, &a.out)?);
            crate::custody::seal(&a.out, &written, a.sign_key.as_deref())?;
            Ok(())
        }
        Command::Verify(v) => verify(&v),
        Command::Probe(p) => probe(&p),
        Command::Demo(d) => {
            let (policy, lang) = load_policy(&d.policy)?;
            if let Some(addr) = &d.serve {
                crate::http::listen_addr(addr).map_err(|e| Failure::usage(format!("--serve: {e}")))?;
            }
            let token = match &d.bearer_token_file {
                Some(f) => Some(crate::http::read_token(f).map_err(Failure::usage)?),
                None => None,
            };
            let outcome = crate::demo::run(policy, lang, &d.out)?;
            print_summary(&outcome, &d.out);
            let mut written = outcome.written.clone();
            written.extend(pdf_if_asked(d.policy.pdf, &d.out)?);
            crate::custody::seal(&d.out, &written, None)?;
            match &d.serve {
                Some(addr) => serve_demo(addr, token, &outcome),
                None => Ok(()),
            }
        }
        Command::Generate(g) => {
            let mut spec = SiteSpec::new(g.workers, g.days, g.seed, g.scenario);
            let first = match (g.start, g.recent) {
                (Some(start), _) => Some(start),
                (None, true) => {
                    Some(chrono::Utc::now().date_naive() - chrono::Days::new(u64::from(g.days.max(1) - 1)))
                }
                (None, false) => None,
            };
            if let Some(start) = first {
                use chrono::Datelike;
                spec.start = start - chrono::Days::new(u64::from(start.weekday().num_days_from_monday()));
            }
            let written = crate::generate::write_file(spec, &g.out).map_err(|e| match e {
                crate::generate::WriteError::Format(m) => Failure::usage(m),
                other => Failure::run(other.to_string()),
            })?;
            println!(
                "{} events written to {} ({} workers, {} days, scenario {})",
                written.events,
                g.out.display(),
                g.workers,
                written.days,
                g.scenario.name()
            );
            Ok(())
        }
        Command::Ingest(i) => {
            if !i.config.is_file() {
                return Err(Failure::usage(format!("{}: no such file", i.config.display())));
            }
            crate::service::main(&i.config)
        }
        Command::Store(StoreCommand::Check(c)) => store_check(&c),
        Command::Rules(r) => rules(&r),
        Command::Inspect(i) => {
            if !i.file.is_file() {
                return Err(Failure::usage(format!("{}: no such file", i.file.display())));
            }
            if let Some(m) = &i.try_mapping {
                let (mapping, _) =
                    vigie_ingest::mapping::Mapping::from_file(m).map_err(|p| Failure::usage(p.join("\n")))?;
                let text = crate::inspect::try_mapping(&i.file, &mapping)
                    .map_err(|e| Failure::run(format!("{}: {e}", i.file.display())))?;
                print!("{text}");
                return Ok(());
            }
            let draft = crate::inspect::inspect(&i.file)
                .map_err(|e| Failure::run(format!("{}: {e}", i.file.display())))?;
            match &i.out {
                Some(out) => {
                    std::fs::write(out, &draft)
                        .map_err(|e| Failure::run(format!("{}: {e}", out.display())))?;
                    eprintln!("Draft mapping written to {}", out.display());
                }
                None => print!("{draft}"),
            }
            Ok(())
        }
        Command::CheckMapping(c) => {
            let (m, sha) = vigie_ingest::mapping::Mapping::from_file(&c.file)
                .map_err(|p| Failure::usage(p.join("\n")))?;
            println!(
                "{}: mapping `{}` is valid ({} fields, {} event codes, SHA-256 {})",
                c.file.display(),
                m.name,
                m.fields.len(),
                m.kinds.len(),
                vigie_ingest::hex(&sha)
            );
            Ok(())
        }
        Command::CheckPolicy(c) => {
            let p = Policy::from_file(&c.file).map_err(|e| Failure::usage(e.to_string()))?;
            println!(
                "{}: policy `{}` is valid ({} rules, k = {})",
                c.file.display(),
                p.name,
                p.rules.len(),
                p.k
            );
            Ok(())
        }
    }
}

/// `vigie rules`: the catalogue, whole or for one profile.
fn rules(r: &RulesArgs) -> Result<(), Failure> {
    use vigie_analyze::catalogue::{catalogue, markdown};
    let cat = catalogue();
    if let Some(p) = &r.profile {
        if cat.profile(p).is_none() {
            return Err(Failure::usage(format!(
                "unknown profile `{p}`: the built-in profiles are {}",
                cat.profile_ids().join(", ")
            )));
        }
    }
    let text = match (r.format.as_str(), &r.profile) {
        ("md", p) => markdown(p.as_deref(), &r.lang),
        (_, None) => serde_json::to_string_pretty(cat).map_err(|e| Failure::run(e.to_string()))? + "\n",
        (_, Some(p)) => {
            // The profile's rules as the analysis resolves them, with the
            // catalogue's texts.
            let policy = Policy::profile(p).map_err(|e| Failure::usage(e.to_string()))?;
            let rules: Vec<serde_json::Value> = cat
                .rule
                .iter()
                .filter_map(|d| {
                    let setting = policy.rules.get(&d.id)?;
                    Some(serde_json::json!({
                        "id": d.id,
                        "family": d.family,
                        "counted": d.counted,
                        "bounded": d.bounded,
                        "name": d.name,
                        "description": d.description,
                        "questions": d.questions,
                        "evidence": d.evidence,
                        "contested": d.contested,
                        "setting": setting,
                    }))
                })
                .collect();
            let out = serde_json::json!({ "profile": cat.profile(p), "rules": rules });
            serde_json::to_string_pretty(&out).map_err(|e| Failure::run(e.to_string()))? + "\n"
        }
    };
    std::io::stdout().write_all(text.as_bytes()).map_err(|e| Failure::run(e.to_string()))
}

fn store_check(c: &StoreCheckArgs) -> Result<(), Failure> {
    use crate::service::config;
    use vigie_ingest::store::{self, check};
    let stored = match &c.config {
        Some(f) => {
            config::load(f, std::env::vars())
                .map_err(|p| Failure::usage(format!("bad configuration:\n  {}", p.join("\n  "))))?
                .store
        }
        None => config::StoreConfig::default(),
    };
    let retention = stored.retention();
    let today = chrono::Utc::now().date_naive();
    if c.store.to_str().is_some_and(|p| p.starts_with("s3://")) {
        let loc = config::StoreConfig { path: c.store.clone(), ..stored }
            .location()
            .map_err(|e| Failure::usage(format!("{}: {e}", c.store.display())))?;
        return bucket_check(&loc, c.repair, &retention, today);
    }
    if !c.store.is_dir() {
        return Err(Failure::usage(format!("{}: no such folder", c.store.display())));
    }
    let report = check::check(&c.store, &retention, today, true);
    print!("{}", report.table(&c.store));
    if c.repair && report.problems() > 0 {
        let n = check::repair(&c.store, &report, &retention, today).map_err(Failure::run)?;
        println!(
            "Repaired: {n} (quarantined under {}, or purged)",
            c.store.join(store::QUARANTINE).display()
        );
    }
    if report.problems() > 0 {
        return Err(Failure::run(format!("{} problems in {}", report.problems(), c.store.display())));
    }
    Ok(())
}

/// `vigie store check s3://...`: the bucket's objects are copied to a
/// private local folder (removed at the end) and checked there, as a
/// folder's files; `--repair` puts things right in the bucket itself.
fn bucket_check(
    loc: &vigie_ingest::store::objects::Location,
    repair: bool,
    retention: &vigie_ingest::store::Retention,
    today: chrono::NaiveDate,
) -> Result<(), Failure> {
    use vigie_ingest::store::{self, check, objects::Location, Store};
    let Location::S3(s3) = loc else { unreachable!("an s3:// path") };
    let bucket = store::bucket::Bucket::open(s3, &format!("check:{}", store::host_name()))
        .map_err(|e| Failure::run(e.to_string()))?;
    let copy = std::env::temp_dir().join(format!("vigie-check-{}", std::process::id()));
    let mut dir = std::fs::DirBuilder::new();
    {
        use std::os::unix::fs::DirBuilderExt;
        dir.mode(0o700);
    }
    dir.create(&copy).map_err(|e| Failure::run(format!("{}: {e}", copy.display())))?;
    let result = (|| {
        let tiers = [store::RAW, store::SUMMARIES, store::AGGREGATES, store::OFFSETS];
        bucket.mirror(&copy, &tiers, &[], &[]).map_err(|e| Failure::run(format!("{loc}: {e}")))?;
        let report = check::check(&copy, retention, today, true);
        print!("{}", report.table(&copy));
        if repair && report.problems() > 0 {
            let on = Store::Bucket(std::sync::Arc::new(bucket));
            let key = |p: &std::path::Path| p.strip_prefix(&copy).unwrap_or(p).to_path_buf();
            let n = check::repair_with(
                &report,
                &mut |p, reason| on.quarantine(&key(p), reason).map(|_| ()).map_err(|e| e.to_string()),
                &mut || {
                    let purged = on.purge(retention, today).map_err(|e| e.to_string())?;
                    Ok(purged.folders.values().sum::<u64>() as usize)
                },
            )
            .map_err(Failure::run)?;
            println!("Repaired: {n} (quarantined under {loc}/{}, or purged)", store::QUARANTINE);
        }
        if report.problems() > 0 {
            return Err(Failure::run(format!("{} problems in {loc}", report.problems())));
        }
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&copy);
    result
}

/// Prints report.pdf when asked; returns its name for the manifest.
fn pdf_if_asked(pdf: bool, out: &std::path::Path) -> Result<Option<String>, Failure> {
    if !pdf {
        return Ok(None);
    }
    crate::report::print_pdf(&out.join("report.html"), &out.join("report.pdf")).map_err(Failure::run)?;
    println!("Report printed to {}", out.join("report.pdf").display());
    Ok(Some("report.pdf".into()))
}

/// `vigie probe`: one GET on loopback (or the given address), its status
/// line printed; exit 0 on 200.
fn probe(p: &ProbeArgs) -> Result<(), Failure> {
    use std::io::Read;
    let addr = crate::http::listen_addr(&p.addr).map_err(|e| Failure::usage(format!("--addr: {e}")))?;
    if !p.path.starts_with('/') || p.path.contains(|c: char| c.is_whitespace() || c.is_control()) {
        return Err(Failure::usage(format!("--path {:?}: a path such as /healthz", p.path)));
    }
    let timeout = std::time::Duration::from_secs(3);
    let mut s = std::net::TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| Failure::run(format!("{addr}: {e}")))?;
    let _ = s.set_read_timeout(Some(timeout));
    s.write_all(format!("GET {} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n", p.path).as_bytes())
        .map_err(|e| Failure::run(format!("{addr}: {e}")))?;
    let mut head = [0u8; 512];
    let n = s.read(&mut head).map_err(|e| Failure::run(format!("{addr}: {e}")))?;
    let text = String::from_utf8_lossy(&head[..n]);
    let status = text.lines().next().unwrap_or("").to_string();
    println!("{status}");
    if status.split_whitespace().nth(1) == Some("200") {
        Ok(())
    } else {
        Err(Failure::run(format!("{}{}: {status}", addr, p.path)))
    }
}

/// `vigie verify`: one line per check, then the verdict.
fn verify(v: &VerifyArgs) -> Result<(), Failure> {
    if !v.out.is_dir() {
        return Err(Failure::usage(format!("{}: no such folder", v.out.display())));
    }
    for f in v.input.iter().chain(&v.pub_key).chain(&v.key_file).chain(&v.employer).chain(&v.mapping) {
        if !f.is_file() {
            return Err(Failure::usage(format!("{}: no such file", f.display())));
        }
    }
    let req = crate::custody::VerifyRequest {
        out: v.out.clone(),
        inputs: v.input.clone(),
        pub_key: v.pub_key.clone(),
        rerun_key: v.key_file.clone(),
        employer: v.employer.clone(),
        mapping: v.mapping.clone(),
    };
    let checks = crate::custody::verify(&req)?;
    let mut stdout = std::io::stdout().lock();
    for c in &checks {
        let _ = writeln!(stdout, "{} {}", if c.ok { "ok  " } else { "FAIL" }, c.what);
    }
    let failed = checks.iter().filter(|c| !c.ok).count();
    if failed == 0 {
        let _ = writeln!(stdout, "verified: {} checks passed", checks.len());
        Ok(())
    } else {
        Err(Failure::run(format!("NOT verified: {failed} of {} checks failed", checks.len())))
    }
}

fn print_summary(outcome: &audit::AuditOutcome, out: &std::path::Path) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(audit::summary_table(&outcome.findings).as_bytes());
    let _ = writeln!(stdout, "Output: {}", out.display());
}

/// `demo --serve`: publishes the demo's findings and counts, then serves
/// `/metrics` until interrupted.
fn serve_demo(addr: &str, token: Option<String>, outcome: &audit::AuditOutcome) -> Result<(), Failure> {
    audit::interrupt::HANDLED_ELSEWHERE.store(true, std::sync::atomic::Ordering::SeqCst);
    let metrics = std::sync::Arc::new(crate::metrics::Metrics::new(crate::metrics::DEFAULT_MAX_SERIES));
    metrics.count_ingest(&outcome.stats);
    let published = metrics.publish(&outcome.evaluation);
    metrics.analysis_last_success.set(chrono::Utc::now().timestamp_millis() as f64 / 1e3);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| Failure::run(e.to_string()))?;
    rt.block_on(async move {
        let listener = crate::http::bind(addr).await.map_err(Failure::run)?;
        let local = listener.local_addr().map_err(|e| Failure::run(e.to_string()))?;
        println!("Serving http://{local}/metrics ({} series); Ctrl-C to stop", published.series);
        crate::http::serve(listener, metrics, token, crate::shutdown::signal()).await;
        Ok(())
    })
}
