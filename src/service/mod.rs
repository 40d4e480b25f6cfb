//! `vigie ingest --config FILE`: the ingestion service. The consumer, its
//! partition buffers, flushes, commits, rebalances, dead letters and the
//! store live in `vigie_ingest` (`kafka`, `store`); this module adds what
//! only the binary has: the configuration file as a whole, the analysis and
//! purge schedule beside the consumer ([`analysis`]), the `/metrics`
//! endpoint, and the process's signals and deadline.

pub mod analysis;
pub mod config;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use vigie_analyze::employer::Employer;
use vigie_analyze::policy::Policy;
use vigie_ingest::kafka::{self, RunSummary, ServiceError};
use vigie_ingest::pseudo::{NoKeyFile, Pseudonymiser};

use crate::metrics::Metrics;
use crate::shutdown::{self, Shutdown};
use config::Config;

/// The service's pseudonymisation key: `store.key_file`,
/// `$VIGIE_KEY_FILE`, or `vigie.key` in a folder store (created once,
/// 0600). A bucket store never holds the key: one of the first two is
/// required (every instance must use the same key).
pub fn service_key(cfg: &Config) -> Result<Pseudonymiser, vigie_ingest::IngestError> {
    let bucket = cfg.store.path.to_str().is_some_and(|p| p.starts_with("s3://"));
    if bucket && cfg.store.key_file.is_none() && std::env::var_os("VIGIE_KEY_FILE").is_none() {
        return Err(vigie_ingest::IngestError::Key(
            "an s3:// store needs store.key_file or $VIGIE_KEY_FILE: every instance must use the same \
             key, and the key is never kept in the bucket"
                .into(),
        ));
    }
    let in_store = cfg.store.path.join("vigie.key");
    Pseudonymiser::resolve(
        cfg.store.key_file.as_deref(),
        cfg.store.allow_shared_key,
        NoKeyFile::CreateAt(&in_store),
    )
}

/// Loads what the analysis needs from the configuration.
pub fn analysis_inputs(cfg: &Config) -> Result<(Policy, Option<Employer>), String> {
    let policy = match &cfg.analysis.policy {
        Some(f) => Policy::from_file(f),
        None => Policy::profile(&cfg.analysis.profile),
    }
    .map_err(|e| e.to_string())?;
    let employer = match &cfg.analysis.employer {
        Some(f) => Some(Employer::from_file(f).map_err(|e| e.to_string())?),
        None => None,
    };
    Ok((policy, employer))
}

/// Runs the service until `shutdown` is triggered (SIGTERM/SIGINT in the
/// binary): the store opened and checked, the analysis and purge on their
/// schedules, the consumer; then flushes, commits, lets the analysis or
/// purge under way finish, and returns. A consumer that stops on an error
/// triggers `shutdown` itself, so that every other task stops too.
pub async fn run(cfg: Config, metrics: Arc<Metrics>, shutdown: Shutdown) -> Result<RunSummary, ServiceError> {
    let holder = analysis::holder_name();
    let store = kafka::open_store(&cfg.store, &holder, &*metrics)?;
    let retention = cfg.store.retention();
    let (policy, employer) = analysis_inputs(&cfg).map_err(ServiceError::Config)?;
    let pseudo = service_key(&cfg)?;
    let sha = |f: &Option<PathBuf>| f.as_ref().and_then(|f| crate::custody::sha256_of(f).ok());
    let custody = analysis::Custody {
        key_fingerprint: pseudo.fingerprint(),
        policy_file_sha256: sha(&cfg.analysis.policy),
        employer_sha256: sha(&cfg.analysis.employer),
        store: None,
    };
    metrics.expects_group.store(true, std::sync::atomic::Ordering::Relaxed);
    // What can fail at start fails here, before anything runs beside it.
    let consumer = kafka::Service::open(&cfg.kafka, store.clone(), &cfg.store, pseudo, metrics.clone())?;
    // Evidence of the source's own retention, before anything is read.
    let evidence = analysis::source_retention(&cfg).await;
    for tier in crate::metrics::TIERS {
        metrics.store_retention.with_label_values(&[tier]).set(f64::from(retention.days(tier)) * 86_400.0);
    }
    metrics.analysis_interval.set(cfg.analysis.interval_s as f64);
    let background = analysis::spawn_background(
        store,
        holder,
        retention,
        Duration::from_secs(cfg.analysis.interval_s),
        Duration::from_secs(cfg.store.purge_interval_s),
        Arc::new((policy, employer, evidence, custody)),
        metrics.clone(),
        shutdown.listener(),
    );
    let mut stop = shutdown.listener();
    let r = consumer.run(async move { stop.recv().await }).await;
    if r.is_ok() {
        // Everything buffered is durable and committed: past the deadline
        // now, the process exits 0 (an analysis cycle under way is cut,
        // findings.json keeps its previous whole version).
        shutdown.mark_committed();
    }
    // Drained, not aborted: an analysis cycle under way ends first.
    shutdown.trigger();
    if let Err(e) = background.await {
        tracing::error!(error = %e, "The analysis task failed");
    }
    r
}

/// The binary's entry: configuration (exit 2 on any problem), metrics
/// endpoint, signals, the loop (exit 1 when it fails).
pub fn main(config_path: &Path) -> Result<(), crate::cli::Failure> {
    use crate::cli::Failure;
    let cfg = config::load(config_path, std::env::vars())
        .map_err(|problems| Failure::usage(format!("bad configuration:\n  {}", problems.join("\n  "))))?;
    analysis_inputs(&cfg).map_err(Failure::usage)?;
    if cfg.store.path.to_str().is_some_and(|p| p.starts_with("s3://"))
        && cfg.store.key_file.is_none()
        && std::env::var_os("VIGIE_KEY_FILE").is_none()
    {
        return Err(Failure::usage(
            "bad configuration:\n  store.path is a bucket: set store.key_file or VIGIE_KEY_FILE (the same key \
             on every instance; a bucket never holds the key)",
        ));
    }
    let token = match &cfg.metrics.bearer_token_file {
        Some(f) => Some(crate::http::read_token(f).map_err(Failure::usage)?),
        None => None,
    };
    // Polars' threads for the analysis are set by the binary's entry
    // (src/main.rs: two, unless POLARS_MAX_THREADS says otherwise).
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .worker_threads(2)
        .build()
        .map_err(|e| Failure::run(e.to_string()))?;
    let deadline = cfg.kafka.shutdown_deadline();
    rt.block_on(async move {
        let metrics = Arc::new(Metrics::new(cfg.metrics.max_series));
        let listener = crate::http::bind(&cfg.metrics.listen).await.map_err(Failure::run)?;
        tracing::info!(listen = %cfg.metrics.listen, "Serving /metrics");
        let shutdown = Shutdown::new();
        let signals = shutdown::on_signal(shutdown.clone(), deadline);
        let mut stop = shutdown.listener();
        let server =
            tokio::spawn(crate::http::serve(
                listener,
                metrics.clone(),
                token,
                async move { stop.recv().await },
            ));
        let r = run(cfg, metrics, shutdown.clone()).await;
        // The server stops accepting and its task ends.
        shutdown.trigger();
        let _ = server.await;
        signals.abort();
        r.map(|_| ()).map_err(|e| Failure::run(e.to_string()))
    })
}
