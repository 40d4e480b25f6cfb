//! vigie's analysis: events in the pseudonymised store become shifts (one
//! Polars lazy query per store bucket), shifts become findings against a
//! policy, with k-anonymous groups, and open-data aggregates.

pub mod aggregates;
pub mod catalogue;
pub mod changepoint;
pub mod dated;
pub mod employer;
pub mod findings;
pub mod fold;
pub mod policy;
pub mod privacy;
pub mod rules;
pub mod shifts;

use std::path::Path;

/// Errors of the analysis. Policy problems are listed all at once.
#[derive(Debug, thiserror::Error)]
pub enum AnalyzeError {
    #[error("{}", .0.join("\n"))]
    Policy(Vec<String>),
    #[error("polars: {0}")]
    Polars(#[from] polars::error::PolarsError),
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
}

impl AnalyzeError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        AnalyzeError::Io { path: path.display().to_string(), source }
    }
}

/// Shifts of every bucket of a store, one bucket at a time (memory is
/// bounded by the largest bucket). `buckets` are folders of Parquet files.
pub fn store_shifts(
    buckets: &[std::path::PathBuf],
    model: &shifts::ShiftModel,
    mut progress: impl FnMut(usize),
) -> Result<Vec<shifts::Shift>, AnalyzeError> {
    let mut all = Vec::new();
    for (i, dir) in buckets.iter().enumerate() {
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
        let mut part = fold::fold_spill(&files, &dropped, model)?;
        all.append(&mut part);
        progress(i + 1);
    }
    all.sort_by(|a, b| (&a.site, a.worker, a.start_us).cmp(&(&b.site, b.worker, b.start_us)));
    Ok(all)
}
