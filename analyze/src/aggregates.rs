//! Open data: the published group-week table as Parquet and CSV
//! (docs/data-dictionary.md).

use std::fs::File;
use std::path::Path;

use polars::prelude::*;

use crate::dated::{Comparison, TargetStep};
use crate::rules::{AggregateRow, Evaluation};
use crate::shifts::{GAP_CLASSES, HIST_BOUNDS_S, JUSTIFY_GAP_BUCKETS};
use crate::AnalyzeError;

/// Column name of a histogram bucket: `iv_le_0_5s` ... `iv_gt_1800s`.
pub fn hist_column(i: usize) -> String {
    match HIST_BOUNDS_S.get(i) {
        Some(b) => format!("iv_le_{}s", b.to_string().replace('.', "_")),
        None => format!("iv_gt_{}s", HIST_BOUNDS_S[HIST_BOUNDS_S.len() - 1]),
    }
}

/// The aggregates as a DataFrame, one row per site, group and ISO week.
pub fn frame(rows: &[AggregateRow]) -> PolarsResult<DataFrame> {
    let mut cols = vec![
        Column::new("site".into(), rows.iter().map(|r| r.site.as_str()).collect::<Vec<_>>()),
        Column::new("group".into(), rows.iter().map(|r| r.group.as_str()).collect::<Vec<_>>()),
        Column::new("week".into(), rows.iter().map(|r| r.week.as_str()).collect::<Vec<_>>()),
        Column::new("workers".into(), rows.iter().map(|r| r.workers).collect::<Vec<_>>()),
        Column::new("shifts".into(), rows.iter().map(|r| r.shifts).collect::<Vec<_>>()),
        Column::new("effective_hours".into(), rows.iter().map(|r| r.effective_hours).collect::<Vec<_>>()),
        Column::new("units".into(), rows.iter().map(|r| r.units).collect::<Vec<_>>()),
        Column::new("uph_p10".into(), rows.iter().map(|r| r.uph_p10).collect::<Vec<_>>()),
        Column::new("uph_p50".into(), rows.iter().map(|r| r.uph_p50).collect::<Vec<_>>()),
        Column::new("uph_p90".into(), rows.iter().map(|r| r.uph_p90).collect::<Vec<_>>()),
    ];
    for i in 0..=HIST_BOUNDS_S.len() {
        cols.push(Column::new(hist_column(i).into(), rows.iter().map(|r| r.hist[i]).collect::<Vec<_>>()));
    }
    for (i, g) in GAP_CLASSES.iter().enumerate() {
        cols.push(Column::new(
            format!("gaps_{g}").into(),
            rows.iter().map(|r| r.gaps[i]).collect::<Vec<_>>(),
        ));
    }
    cols.push(Column::new("idle_flags".into(), rows.iter().map(|r| r.idle_flags).collect::<Vec<_>>()));
    cols.push(Column::new("speed_flags".into(), rows.iter().map(|r| r.speed_flags).collect::<Vec<_>>()));
    cols.push(Column::new(
        "justification_requests".into(),
        rows.iter().map(|r| r.justification_requests).collect::<Vec<_>>(),
    ));
    for (i, b) in JUSTIFY_GAP_BUCKETS.iter().enumerate() {
        cols.push(Column::new(
            format!("justify_gap_{b}").into(),
            rows.iter().map(|r| r.justify_gaps[i]).collect::<Vec<_>>(),
        ));
    }
    cols.push(Column::new(
        "idle_flags_latency".into(),
        rows.iter().map(|r| r.latency_idle_flags).collect::<Vec<_>>(),
    ));
    cols.push(Column::new(
        "shifts_with_target".into(),
        rows.iter().map(|r| r.shifts_with_target).collect::<Vec<_>>(),
    ));
    cols.push(Column::new("target_p50".into(), rows.iter().map(|r| r.target_p50).collect::<Vec<_>>()));
    cols.push(Column::new(
        "achieved_over_target_p50".into(),
        rows.iter().map(|r| r.achieved_over_target_p50).collect::<Vec<_>>(),
    ));
    cols.push(Column::new(
        "shifts_under_target".into(),
        rows.iter().map(|r| r.shifts_under_target).collect::<Vec<_>>(),
    ));
    cols.push(Column::new("prompts".into(), rows.iter().map(|r| r.prompts).collect::<Vec<_>>()));
    for (name, get) in [
        ("prompts_per_hour", (|r: &AggregateRow| r.prompts_per_hour) as fn(&AggregateRow) -> Option<f64>),
        ("prompt_wait_p10", |r| r.prompt_wait_p10),
        ("prompt_wait_p50", |r| r.prompt_wait_p50),
        ("prompt_wait_p90", |r| r.prompt_wait_p90),
        ("dictated_share", |r| r.dictated_share),
        ("drift_p50", |r| r.drift_p50),
    ] {
        cols.push(Column::new(name.into(), rows.iter().map(get).collect::<Vec<_>>()));
    }
    DataFrame::new_infer_height(cols)
}

/// The target steps as a DataFrame (docs/data-dictionary.md).
pub fn steps_frame(steps: &[TargetStep]) -> PolarsResult<DataFrame> {
    let date = |d: chrono::NaiveDate| d.to_string();
    DataFrame::new_infer_height(vec![
        Column::new("site".into(), steps.iter().map(|r| r.site.as_str()).collect::<Vec<_>>()),
        Column::new("group".into(), steps.iter().map(|r| r.group.as_str()).collect::<Vec<_>>()),
        Column::new("process".into(), steps.iter().map(|r| r.process.as_str()).collect::<Vec<_>>()),
        Column::new("from".into(), steps.iter().map(|r| date(r.from)).collect::<Vec<_>>()),
        Column::new("to".into(), steps.iter().map(|r| date(r.to)).collect::<Vec<_>>()),
        Column::new("days".into(), steps.iter().map(|r| r.days).collect::<Vec<_>>()),
        Column::new("target_uph".into(), steps.iter().map(|r| r.target_uph).collect::<Vec<_>>()),
    ])
}

/// The before/after comparisons as a DataFrame (docs/data-dictionary.md).
pub fn comparisons_frame(rows: &[Comparison]) -> PolarsResult<DataFrame> {
    let mut cols = vec![
        Column::new("site".into(), rows.iter().map(|r| r.site.as_str()).collect::<Vec<_>>()),
        Column::new("group".into(), rows.iter().map(|r| r.group.as_str()).collect::<Vec<_>>()),
        Column::new("process".into(), rows.iter().map(|r| r.process.as_str()).collect::<Vec<_>>()),
        Column::new("date".into(), rows.iter().map(|r| r.date.to_string()).collect::<Vec<_>>()),
        Column::new("source".into(), rows.iter().map(|r| r.source.as_str()).collect::<Vec<_>>()),
        Column::new("description".into(), rows.iter().map(|r| r.description.as_str()).collect::<Vec<_>>()),
        Column::new("days_before".into(), rows.iter().map(|r| r.days_before).collect::<Vec<_>>()),
        Column::new("days_after".into(), rows.iter().map(|r| r.days_after).collect::<Vec<_>>()),
    ];
    for (name, get) in [
        ("target_from", (|r: &Comparison| r.target_from) as fn(&Comparison) -> Option<f64>),
        ("target_to", |r| r.target_to),
        ("before_uph", |r| r.before_uph),
        ("after_uph", |r| r.after_uph),
        ("relative", |r| r.relative),
        ("low", |r| r.low),
        ("high", |r| r.high),
    ] {
        cols.push(Column::new(name.into(), rows.iter().map(get).collect::<Vec<_>>()));
    }
    DataFrame::new_infer_height(cols)
}

/// Writes `NAME.parquet` and `NAME.csv` (spreadsheet-safe) into `dir`.
fn write_both(df: &mut DataFrame, dir: &Path, name: &str) -> Result<(), AnalyzeError> {
    let p = dir.join(format!("{name}.parquet"));
    let f = File::create(&p).map_err(|e| AnalyzeError::io(&p, e))?;
    ParquetWriter::new(f).finish(df)?;
    let c = dir.join(format!("{name}.csv"));
    let f = File::create(&c).map_err(|e| AnalyzeError::io(&c, e))?;
    let mut csv = spreadsheet_safe(df)?;
    CsvWriter::new(f).include_header(true).finish(&mut csv)?;
    Ok(())
}

/// The open data's tables, in the order they are written.
pub const TABLES: [&str; 3] = ["group_weeks", "target_steps", "comparisons"];

/// Writes the open data into `dir`: `group_weeks`, `target_steps` and
/// `comparisons`, each as Parquet and CSV. Returns the file names.
pub fn write(eval: &Evaluation, dir: &Path) -> Result<Vec<String>, AnalyzeError> {
    std::fs::create_dir_all(dir).map_err(|e| AnalyzeError::io(dir, e))?;
    write_both(&mut frame(&eval.aggregates)?, dir, TABLES[0])?;
    write_both(&mut steps_frame(&eval.target_steps)?, dir, TABLES[1])?;
    write_both(&mut comparisons_frame(&eval.comparisons)?, dir, TABLES[2])?;
    Ok(TABLES.iter().flat_map(|t| [format!("{t}.parquet"), format!("{t}.csv")]).collect())
}

/// The frame as a spreadsheet may open it: a text cell that begins with
/// `=`, `+`, `-` or `@` (a site named `-2+3`) would be read as a formula,
/// so it gets a leading `'`. The Parquet file keeps the values as they are.
pub fn spreadsheet_safe(df: &DataFrame) -> Result<DataFrame, AnalyzeError> {
    let mut cols = Vec::with_capacity(df.width());
    for c in df.columns() {
        if let Ok(ca) = c.str() {
            let safe: StringChunked = ca.apply_values(|v| {
                if v.starts_with(['=', '+', '-', '@']) {
                    format!("'{v}").into()
                } else {
                    v.into()
                }
            });
            cols.push(safe.into_column().with_name(c.name().clone()));
        } else {
            cols.push(c.clone());
        }
    }
    Ok(DataFrame::new_infer_height(cols)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_that_a_spreadsheet_would_run_is_quoted() {
        let df = df!("site" => ["-2+3", "=cmd", "@x", "+1", "lyon-1"], "n" => [-1i64, 2, 3, 4, 5]).unwrap();
        let safe = spreadsheet_safe(&df).unwrap();
        let ca = safe.column("site").unwrap().str().unwrap().clone();
        let site: Vec<&str> = (0..ca.len()).map(|i| ca.get(i).unwrap()).collect();
        assert_eq!(site, ["'-2+3", "'=cmd", "'@x", "'+1", "lyon-1"]);
        assert_eq!(safe.column("n").unwrap(), df.column("n").unwrap(), "numbers stay numbers");
    }
}
