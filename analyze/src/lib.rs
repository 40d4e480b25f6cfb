//! vigie's analysis: events in the pseudonymised store become shifts (one
//! Polars lazy query per store bucket), shifts become findings against a
//! policy, with k-anonymous groups, and open-data aggregates.

#![warn(missing_docs)]

pub mod aggregates;
pub mod catalogue;
pub mod changepoint;
pub mod dated;
pub mod employer;
pub mod findings;
pub mod fold;
pub mod group;
pub mod policy;
pub mod privacy;
pub mod rules;
pub mod shifts;

use std::path::Path;

/// Errors of the analysis. Policy problems are listed all at once.
#[derive(Debug, thiserror::Error)]
pub enum AnalyzeError {
    /// A policy, profile or employer declaration that cannot be read or
    /// used: one message per problem.
    #[error("{}", .0.join("\n"))]
    Policy(Vec<String>),
    /// A Polars error: reading, querying or writing a frame (Parquet, CSV).
    #[error("polars: {0}")]
    Polars(#[from] polars::error::PolarsError),
    /// A file or folder that could not be read or written, with its path.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder, as displayed.
        path: String,
        /// The underlying I/O error.
        source: std::io::Error,
    },
}

impl AnalyzeError {
    /// An I/O error about `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        AnalyzeError::Io { path: path.display().to_string(), source }
    }
}

/// Shifts of every bucket of the audit's spill, one bucket at a time on
/// each core (memory is bounded by the largest buckets). `buckets` are
/// folders of spill files.
pub fn store_shifts(
    buckets: &[std::path::PathBuf],
    model: &shifts::ShiftModel,
    mut progress: impl FnMut(usize) + Send,
) -> Result<Vec<shifts::Shift>, AnalyzeError> {
    // Buckets are folded on the machine's cores, one at a time each.
    let done = std::sync::atomic::AtomicUsize::new(0);
    let progress = std::sync::Mutex::new(&mut progress);
    let parts = vigie_ingest::map_parallel(buckets, vigie_ingest::work_threads(), |dir| {
        // The bucket's files by name: a path is never a glob pattern (an
        // output folder may hold `*` or `[`).
        let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| AnalyzeError::io(dir, e))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "spill"))
            .collect();
        files.sort();
        let dropped = vigie_ingest::dedup::read_dropped(dir).map_err(|e| match e {
            vigie_ingest::IngestError::Io { source, .. } => AnalyzeError::io(dir, source),
            other => AnalyzeError::io(dir, std::io::Error::other(other.to_string())),
        })?;
        let part = fold::fold_spill(&files, &dropped, model)?;
        if let Ok(mut p) = progress.lock() {
            // Counted under the lock, so the progress never steps back.
            let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            (*p)(n);
        }
        Ok::<_, AnalyzeError>(part)
    })?;
    let mut all: Vec<shifts::Shift> = parts.into_iter().flatten().collect();
    all.sort_by(|a, b| (&a.site, a.worker, a.start_us).cmp(&(&b.site, b.worker, b.start_us)));
    Ok(all)
}
