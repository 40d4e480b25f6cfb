//! Open data: the published group-week table as Parquet and CSV
//! (docs/data-dictionary.md).

use std::fs::File;
use std::path::Path;

use polars::prelude::*;

use crate::rules::AggregateRow;
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

/// Writes `group_weeks.parquet` and `group_weeks.csv` into `dir`.
pub fn write(rows: &[AggregateRow], dir: &Path) -> Result<(), AnalyzeError> {
    std::fs::create_dir_all(dir).map_err(|e| AnalyzeError::io(dir, e))?;
    let mut df = frame(rows)?;
    let p = dir.join("group_weeks.parquet");
    let f = File::create(&p).map_err(|e| AnalyzeError::io(&p, e))?;
    ParquetWriter::new(f).finish(&mut df)?;
    let c = dir.join("group_weeks.csv");
    let f = File::create(&c).map_err(|e| AnalyzeError::io(&c, e))?;
    let mut csv = spreadsheet_safe(&df)?;
    CsvWriter::new(f).include_header(true).finish(&mut csv)?;
    Ok(())
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
