//! From events to shifts: one Polars lazy query per store bucket turns the
//! pseudonymised events of a set of workers into one row per shift, with
//! every count the rules need. All rules then work on shifts, a table
//! about a thousand times smaller than the events.
//!
//! Definitions (docs/metrics.md):
//! - Activity events are markers, scans and voice prompts; the employer's
//!   flags, justification requests and rate targets are not activity.
//! - A shift runs from `shift_start` to the next `shift_end`; without
//!   markers, it is a run of activity with no gap of 3 h or more.
//! - A declared break runs from `break_start` to the next `break_end`.
//! - A stretch is a run of activity (events inside declared breaks set
//!   aside) with no gap of 20 min or more.

use std::sync::Arc;

use polars::prelude::*;

use crate::AnalyzeError;
use vigie_ingest::event::Kind;

/// Upper bounds (inclusive) of the inter-scan interval histogram, seconds;
/// a last bucket holds longer intervals.
pub const HIST_BOUNDS_S: [f64; 13] =
    [0.5, 1.0, 1.25, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0];

/// Gap classes between consecutive activity events of a shift.
pub const GAP_CLASSES: [&str; 4] = ["micro", "latency", "idle", "break"];

/// Upper bounds (exclusive) of the buckets of the time from a voice prompt
/// to the scan that confirms it, in seconds; the last bucket is open.
pub const PROMPT_BOUNDS_S: [f64; 12] = [1.0, 2.0, 3.0, 5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 120.0, 300.0];

/// A prompt that comes at most this long after the scan that confirmed
/// the previous one is chained to it: the next task was dictated at once.
pub const CHAIN_S: f64 = 5.0;

/// Buckets of the gap a justification request is about (its `gap_s`):
/// under 1 min, 1-3, 3-5, 5-10 min, 10 min or more, and not given. The
/// CNIL's "temps de latence" indicator covered gaps of 1 to 10 minutes.
pub const JUSTIFY_GAP_BUCKETS: [&str; 6] =
    ["lt_60s", "60_180s", "180_300s", "300_600s", "ge_600s", "unknown"];

/// Parameters of the shift model (policy settings).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ShiftModel {
    /// Gap that splits inferred shifts (3 h).
    pub shift_gap_s: f64,
    /// Shortest gap or declared break that counts as a break (20 min).
    pub break_min_s: f64,
    /// Intervals between scans below this are "rush" (1.25 s).
    pub rush_s: f64,
    /// Gap class bounds: latency from, idle from (60 s, 600 s).
    pub latency_from_s: f64,
    /// Where the `idle` gap class starts (600 s); an idle flag at a lower
    /// threshold (from `latency_from_s`) counts as a latency flag.
    pub idle_from_s: f64,
}

impl Default for ShiftModel {
    fn default() -> Self {
        ShiftModel {
            shift_gap_s: 3.0 * 3600.0,
            break_min_s: 1200.0,
            rush_s: 1.25,
            latency_from_s: 60.0,
            idle_from_s: 600.0,
        }
    }
}

/// One shift of one worker, with everything the rules and the open data
/// need. The worker is a pseudonym and never leaves vigie.
#[derive(Debug, Clone, PartialEq)]
pub struct Shift {
    /// The site of the shift's events.
    pub site: Arc<str>,
    /// The worker's pseudonym: the first 8 bytes of HMAC-SHA256(key, worker).
    pub worker: u64,
    /// The first `team` an event of the shift gives; `None` when none does.
    pub team: Option<Arc<str>>,
    /// The first `zone` an event of the shift gives; `None` when none does.
    pub zone: Option<Arc<str>>,
    /// First and last activity event, UTC microseconds.
    pub start_us: i64,
    /// Last activity event, UTC microseconds.
    pub end_us: i64,
    /// Offset carried by the first event: the shift's day and week are
    /// taken in it.
    pub offset_s: i32,
    /// Declared breaks inside the shift, microseconds.
    pub break_us: i64,
    /// Longest stretch without a break of 20 min or more.
    pub longest_stretch_us: i64,
    /// The shift's first stretch (work before its first break), and how
    /// many stretches it has (1: no break at all).
    pub first_stretch_us: i64,
    /// How many stretches the shift has (1: no break at all).
    pub stretches: u64,
    /// Undeclared stops of the break length (20 min) or more between two
    /// events outside declared breaks: breaks by the lower bound of
    /// effective time, work by its upper bound.
    pub inferred_break_us: i64,
    /// `scan` events.
    pub scans: u64,
    /// Units scanned: the sum of the scans' `quantity` (1 when a scan gave
    /// none).
    pub units: u64,
    /// Sum of `weight_kg`, when any scan carried one.
    pub weight_kg: Option<f64>,
    /// Intervals between consecutive scans, and those under `rush_s`.
    pub intervals: u64,
    /// Intervals between consecutive scans shorter than `rush_s`.
    pub rush: u64,
    /// Intervals between consecutive scans by bucket of [`HIST_BOUNDS_S`]: up
    /// to each bound and above the previous one; the last bucket, over 1800 s.
    pub hist: [u64; HIST_BOUNDS_S.len() + 1],
    /// Gaps between consecutive activity events by class of [`GAP_CLASSES`]:
    /// `micro` (under `latency_from_s`), `latency` (under `idle_from_s`), `idle`,
    /// and `break` (`break_min_s` or more, or closing a declared break).
    pub gaps: [u64; GAP_CLASSES.len()],
    /// `idle_flag` events.
    pub idle_flags: u64,
    /// Smallest idle threshold seen: `threshold_s`, else the gap before
    /// the flag.
    pub idle_min_s: Option<f64>,
    /// `speed_flag` events.
    pub speed_flags: u64,
    /// Smallest `threshold_s` a speed flag carried, seconds; `None` when
    /// none carried one.
    pub speed_min_s: Option<f64>,
    /// `justification_request` events.
    pub justifications: u64,
    /// Justification requests by the gap they are about
    /// (`JUSTIFY_GAP_BUCKETS`).
    pub justify_gaps: [u64; JUSTIFY_GAP_BUCKETS.len()],
    /// Idle flags at a latency threshold: `threshold_s` (else the gap
    /// before the flag) of 1 minute or more and under 10.
    pub latency_idle_flags: u64,
    /// The worker's target in force at the end of the shift: the last
    /// `target_per_hour` of a `rate_target` event at or before it.
    pub target_uph: Option<f64>,
    /// Voice prompts; those confirmed by a scan, by the time to it
    /// (`PROMPT_BOUNDS_S`); the time spent on prompts chained to the
    /// previous confirmation (dictated at once), microseconds.
    pub prompts: u64,
    /// Prompts confirmed by a scan (the next activity event), by the time
    /// to it in the buckets of [`PROMPT_BOUNDS_S`] (the last open).
    pub prompt_conf: [u64; PROMPT_BOUNDS_S.len() + 1],
    /// Time from each chained prompt (one at most [`CHAIN_S`] after the scan
    /// just before it) to its confirming scan, summed, microseconds.
    pub dictated_us: i64,
    /// Units scanned in the first and in the last hour of the shift.
    pub units_first_hour: u64,
    /// Units scanned in the shift's last hour (after `end_us` - 1 h).
    pub units_last_hour: u64,
    /// The process (`Process` code) of the shift's first scan that gives
    /// one: the pace is compared within a process, so that a change of
    /// mix is not read as a change of pace.
    pub process: Option<u8>,
    /// Idle flags and justification requests inside declared breaks.
    pub flags_in_breaks: u64,
    /// Gaps of 10 min or more between activity events (California rest
    /// periods), and when the first gap of 30 min or more began, from the
    /// shift start (meal period).
    pub rest_breaks: u64,
    /// When the first gap of 30 min or more began, microseconds from the
    /// shift start; `None` without such a gap.
    pub meal_after_us: Option<i64>,
    /// Gaps of 30 min or more between activity events (meal periods).
    pub meal_breaks: u64,
}

impl Shift {
    /// From the first to the last activity event, microseconds.
    pub fn span_us(&self) -> i64 {
        self.end_us - self.start_us
    }

    /// Span minus declared breaks: the upper bound of effective time
    /// (every undeclared stop counted as work).
    pub fn effective_us(&self) -> i64 {
        (self.span_us() - self.break_us).max(0)
    }

    /// Span minus declared and inferred breaks: the lower bound of
    /// effective time (every undeclared stop of the break length counted
    /// as a break).
    pub fn effective_lower_us(&self) -> i64 {
        (self.span_us() - self.break_us - self.inferred_break_us).max(0)
    }

    /// Local start, microseconds since the epoch in the shift's offset.
    pub fn local_start_us(&self) -> i64 {
        self.start_us + i64::from(self.offset_s) * 1_000_000
    }

    /// Units per effective hour, when the shift has scans and time.
    pub fn units_per_hour(&self) -> Option<f64> {
        let h = self.effective_us() as f64 / 3.6e9;
        (self.scans > 0 && h > 0.0).then(|| self.units as f64 / h)
    }
}

fn kind(k: Kind) -> Expr {
    lit(k.code())
}

/// The columns of the events the shift query reads.
pub(crate) fn query_columns() -> Vec<Expr> {
    [
        "site",
        "worker",
        "ts_us",
        "offset_s",
        "kind",
        "team",
        "zone",
        "quantity",
        "weight_kg",
        "threshold_s",
        "gap_s",
        "target_per_hour",
        "process",
    ]
    .into_iter()
    .map(col)
    .collect()
}

/// The lazy query from a bucket's events to its shifts. The audit folds
/// its buckets in Rust instead ([`crate::fold`]); a property test holds
/// the two to the same shifts.
pub fn shift_query(events: LazyFrame, m: &ShiftModel) -> LazyFrame {
    let us = |s: f64| lit((s * 1e6).round() as i64);
    let site = || col("site");
    const SENTINEL: i64 = i64::MIN;
    let k = || col("kind");
    let ts = || col("ts_us");
    // Sorted by worker and time, events are one table; a reset at each
    // worker's first row lets plain forward fills and cumulative sums
    // stand in for window functions.
    let first_row = (col("worker").neq(col("worker").shift(lit(1))))
        .or(site().neq(site().shift(lit(1))))
        .fill_null(lit(true));
    let last_row = (col("worker").neq(col("worker").shift(lit(-1))))
        .or(site().neq(site().shift(lit(-1))))
        .fill_null(lit(true));
    let ffill = |e: Expr| e.fill_null_with_strategy(FillNullStrategy::Forward(None));
    let bfill = |e: Expr| e.fill_null_with_strategy(FillNullStrategy::Backward(None));
    // The value of `e` at the first row after this one where `cond` holds,
    // within the same worker (null if none).
    let first_after = |cond: Expr, e: Expr| {
        let filled = bfill(when(cond).then(e).when(col("last_row")).then(lit(SENTINEL)).otherwise(lit(NULL)));
        let next = when(col("last_row")).then(lit(NULL)).otherwise(filled.shift(lit(-1)));
        when(next.clone().eq(lit(SENTINEL))).then(lit(NULL)).otherwise(next)
    };
    // The value of `e` at the last row before this one where `cond` held,
    // within the same worker (null if none).
    let last_before = |cond: Expr, e: Expr| {
        let filled =
            ffill(when(cond).then(e).when(col("first_row")).then(lit(SENTINEL)).otherwise(lit(NULL)));
        let prev = when(col("first_row")).then(lit(NULL)).otherwise(filled.shift(lit(1)));
        when(prev.clone().eq(lit(SENTINEL))).then(lit(NULL)).otherwise(prev)
    };
    // 1 between an opening and a closing marker; shift markers also close
    // a break left open.
    let state_before = |open: Kind, close: Kind| {
        let closes = k().eq(kind(close)).or(k().eq(kind(Kind::ShiftStart))).or(k().eq(kind(Kind::ShiftEnd)));
        let s = ffill(
            when(k().eq(kind(open)))
                .then(lit(1i32))
                .when(closes)
                .then(lit(0i32))
                .when(col("first_row"))
                .then(lit(0i32))
                .otherwise(lit(NULL).cast(DataType::Int32)),
        );
        when(col("first_row")).then(lit(0i32)).otherwise(s.shift(lit(1))).fill_null(lit(0i32))
    };
    let act = k().lt_eq(kind(Kind::VoicePrompt));

    let base = events
        .select(query_columns())
        // Stable: events of one worker at the same time and of the same
        // kind stay in the order read (the first team or zone given wins).
        .sort_by_exprs(
            [site(), col("worker"), col("ts_us"), col("kind")],
            SortMultipleOptions::default().with_maintain_order(true),
        )
        .with_columns([first_row.alias("first_row"), last_row.alias("last_row")])
        .with_columns([
            act.clone().alias("act"),
            state_before(Kind::BreakStart, Kind::BreakEnd).alias("in_break_before"),
            state_before(Kind::ShiftStart, Kind::ShiftEnd).alias("open_before"),
        ])
        .with_columns([
            last_before(col("act"), ts()).alias("prev_act_ts"),
            last_before(col("act"), k().cast(DataType::Int32)).alias("prev_act_kind"),
            first_after(col("act"), ts()).alias("next_act_ts"),
            first_after(col("act"), k().cast(DataType::Int32)).alias("next_act_kind"),
            // Activity outside declared breaks (the break_end itself is
            // kept: it closes the break).
            (col("act").and(col("in_break_before").eq(lit(0i32)).or(k().eq(kind(Kind::BreakEnd)))))
                .alias("kept"),
            ffill(
                when(k().eq(kind(Kind::BreakStart)))
                    .then(ts())
                    .when(col("first_row"))
                    .then(lit(SENTINEL))
                    .otherwise(lit(NULL)),
            )
            .alias("last_break_start"),
            // The worker's target in force: the last `rate_target` so far
            // (-1: none yet).
            ffill(
                when(col("target_per_hour").is_not_null())
                    .then(col("target_per_hour"))
                    .when(col("first_row"))
                    .then(lit(-1.0))
                    .otherwise(lit(NULL).cast(DataType::Float64)),
            )
            .alias("target_ff"),
        ])
        .with_columns([
            (ts() - col("prev_act_ts")).alias("gap_us"),
            last_before(col("kept"), ts()).alias("prev_kept_ts"),
        ])
        .with_column(
            (col("act").and(
                col("prev_act_ts")
                    .is_null()
                    .or(k().eq(kind(Kind::ShiftStart)))
                    .or(col("prev_act_kind").eq(lit(i32::from(Kind::ShiftEnd.code()))))
                    .or(col("gap_us").gt_eq(us(m.shift_gap_s)).and(col("open_before").neq(lit(1i32)))),
            ))
            .alias("new_shift"),
        )
        .with_column(
            when(col("act").not().and(col("prev_act_ts").is_null()))
                .then(lit(NULL).cast(DataType::UInt32))
                .otherwise(col("new_shift").cast(DataType::UInt32).cum_sum(false))
                .alias("shift_id"),
        )
        .with_columns([
            // Stretches: cut at a new shift or a gap of 20 min or more
            // between kept events.
            (col("kept").and(
                col("new_shift")
                    .or((ts() - col("prev_kept_ts")).gt_eq(us(m.break_min_s)))
                    .fill_null(lit(true)),
            ))
            .alias("cut"),
            // Declared break length, at its break_end.
            when(
                k().eq(kind(Kind::BreakEnd))
                    .and(col("in_break_before").eq(lit(1i32)))
                    .and(col("last_break_start").neq(lit(SENTINEL))),
            )
            .then(ts() - col("last_break_start"))
            .otherwise(lit(NULL))
            .alias("break_us"),
            // Previous scan of the same shift.
            last_before(
                k().eq(kind(Kind::Scan)).or(col("new_shift")),
                when(k().eq(kind(Kind::Scan))).then(ts()).otherwise(lit(SENTINEL)),
            )
            .alias("prev_scan_raw"),
        ])
        .with_columns([
            col("cut").cast(DataType::UInt32).cum_sum(false).alias("stretch_id"),
            when(
                k().eq(kind(Kind::Scan)).and(col("new_shift").not()).and(col("prev_scan_raw").is_not_null()),
            )
            .then(ts() - col("prev_scan_raw"))
            .otherwise(lit(NULL))
            .alias("interval_us"),
            when(col("act").and(col("new_shift").not()))
                .then(col("gap_us"))
                .otherwise(lit(NULL))
                .alias("act_gap_us"),
            // Stops between kept events that no declared break explains.
            when(
                col("kept")
                    .and(col("new_shift").not())
                    .and(k().eq(kind(Kind::BreakEnd)).and(col("in_break_before").eq(lit(1i32))).not())
                    .and((ts() - col("prev_kept_ts")).gt_eq(us(m.break_min_s))),
            )
            .then(ts() - col("prev_kept_ts"))
            .otherwise(lit(NULL))
            .alias("inferred_us"),
        ])
        .filter(col("shift_id").is_not_null());

    // Longest stretch per shift.
    let stretches = base
        .clone()
        .filter(col("kept"))
        .group_by([col("shift_id"), col("stretch_id")])
        .agg([(col("ts_us").max() - col("ts_us").min()).alias("len_us")])
        .group_by([col("shift_id")])
        .agg([
            col("len_us").max().alias("longest_stretch_us"),
            col("len_us")
                .sort_by([col("stretch_id")], SortMultipleOptions::default())
                .first()
                .alias("first_stretch_us"),
            col("len_us").count().cast(DataType::UInt64).alias("stretches"),
        ]);

    let iv = || col("interval_us");
    let count = |e: Expr| e.cast(DataType::UInt64).sum();
    let mut aggs = vec![
        col("site").first().alias("site"),
        col("worker").first().alias("worker"),
        col("team").drop_nulls().first().alias("team"),
        col("zone").drop_nulls().first().alias("zone"),
        col("ts_us").filter(col("act")).min().alias("start_us"),
        col("ts_us").filter(col("act")).max().alias("end_us"),
        col("offset_s").filter(col("act")).first().alias("offset_s"),
        col("break_us").sum().alias("break_us"),
        col("inferred_us").sum().alias("inferred_break_us"),
        count(k().eq(kind(Kind::Scan))).alias("scans"),
        col("quantity").filter(k().eq(kind(Kind::Scan))).cast(DataType::UInt64).sum().alias("units"),
        col("weight_kg").filter(k().eq(kind(Kind::Scan))).sum().alias("weight_kg"),
        col("weight_kg").filter(k().eq(kind(Kind::Scan))).count().alias("weight_n"),
        iv().count().cast(DataType::UInt64).alias("intervals"),
        count(iv().lt(us(m.rush_s))).alias("rush"),
        count(k().eq(kind(Kind::IdleFlag))).alias("idle_flags"),
        when(k().eq(kind(Kind::IdleFlag)))
            .then(col("threshold_s").fill_null(col("gap_us").cast(DataType::Float64) / lit(1e6)))
            .otherwise(lit(NULL))
            .min()
            .alias("idle_min_s"),
        count(k().eq(kind(Kind::SpeedFlag))).alias("speed_flags"),
        col("threshold_s").filter(k().eq(kind(Kind::SpeedFlag))).min().alias("speed_min_s"),
        count(k().eq(kind(Kind::JustificationRequest))).alias("justifications"),
        count(
            k().eq(kind(Kind::IdleFlag)).and(
                col("threshold_s")
                    .fill_null(col("gap_us").cast(DataType::Float64) / lit(1e6))
                    .gt_eq(lit(m.latency_from_s))
                    .and(
                        col("threshold_s")
                            .fill_null(col("gap_us").cast(DataType::Float64) / lit(1e6))
                            .lt(lit(m.idle_from_s)),
                    ),
            ),
        )
        .alias("latency_idle_flags"),
        col("target_ff").filter(col("target_ff").gt_eq(lit(0.0))).last().alias("target_uph"),
        col("process").filter(k().eq(kind(Kind::Scan))).drop_nulls().first().alias("process"),
        count(
            k().eq(kind(Kind::IdleFlag))
                .or(k().eq(kind(Kind::JustificationRequest)))
                .and(col("in_break_before").eq(lit(1i32))),
        )
        .alias("flags_in_breaks"),
    ];
    // Voice pacing: each prompt confirmed by the next activity event being
    // a scan; the time to that scan, by bucket; the prompts chained to the
    // previous confirmation (a scan at most `CHAIN_S` before).
    let prompt = || k().eq(kind(Kind::VoicePrompt));
    let confirmed = || prompt().and(col("next_act_kind").eq(lit(i32::from(Kind::Scan.code()))));
    let wait = || col("next_act_ts") - ts();
    aggs.push(count(prompt()).alias("prompts"));
    let mut lo = 0.0;
    for (i, hi) in PROMPT_BOUNDS_S.iter().copied().chain([f64::INFINITY]).enumerate() {
        let cond = confirmed().and(wait().gt_eq(us(lo)));
        let cond = if hi.is_finite() { cond.and(wait().lt(us(hi))) } else { cond };
        aggs.push(count(cond).alias(format!("pconf_{i}")));
        lo = hi;
    }
    let chained = confirmed()
        .and(col("prev_act_kind").eq(lit(i32::from(Kind::Scan.code()))))
        .and((ts() - col("prev_act_ts")).lt_eq(us(CHAIN_S)));
    aggs.push(wait().filter(chained).sum().alias("dictated_us"));
    // Units in the shift's first and last hour (for shifts of 2 h or
    // more: the drift within a shift).
    let start = || col("ts_us").filter(col("act")).min();
    let end = || col("ts_us").filter(col("act")).max();
    let scan_units =
        |cond: Expr| col("quantity").filter(k().eq(kind(Kind::Scan)).and(cond)).cast(DataType::UInt64).sum();
    aggs.push(scan_units(ts().lt(start() + lit(3_600_000_000i64))).alias("units_first_hour"));
    aggs.push(scan_units(ts().gt(end() - lit(3_600_000_000i64))).alias("units_last_hour"));
    // Justification requests by the gap they are about.
    let jr = || k().eq(kind(Kind::JustificationRequest));
    let gs = || col("gap_s");
    let bounds = [0.0, 60.0, 180.0, 300.0, 600.0, f64::INFINITY];
    for (i, name) in JUSTIFY_GAP_BUCKETS.iter().enumerate() {
        let cond = match (bounds.get(i), bounds.get(i + 1)) {
            _ if *name == "unknown" => jr().and(gs().is_null()),
            (Some(lo), Some(hi)) if hi.is_finite() => jr().and(gs().gt_eq(lit(*lo))).and(gs().lt(lit(*hi))),
            (Some(lo), _) => jr().and(gs().gt_eq(lit(*lo))),
            _ => lit(false),
        };
        aggs.push(count(cond).alias(format!("jgap_{name}")));
    }
    let mut lo = f64::NEG_INFINITY;
    for (i, hi) in HIST_BOUNDS_S.iter().copied().chain([f64::INFINITY]).enumerate() {
        let cond = if lo.is_finite() { iv().gt(us(lo)) } else { iv().gt_eq(lit(0i64)) };
        let cond = if hi.is_finite() { cond.and(iv().lt_eq(us(hi))) } else { cond };
        aggs.push(count(cond).alias(format!("hist_{i}")));
        lo = hi;
    }
    let g = || col("act_gap_us");
    let declared = k().eq(kind(Kind::BreakEnd)).and(col("in_break_before").eq(lit(1i32)));
    let brk = g().gt_eq(us(m.break_min_s)).or(declared.clone().and(g().is_not_null()));
    aggs.push(count(g().lt(us(m.latency_from_s)).and(brk.clone().not())).alias("gap_micro"));
    aggs.push(
        count(g().gt_eq(us(m.latency_from_s)).and(g().lt(us(m.idle_from_s))).and(brk.clone().not()))
            .alias("gap_latency"),
    );
    aggs.push(count(g().gt_eq(us(m.idle_from_s)).and(brk.clone().not())).alias("gap_idle"));
    aggs.push(count(brk).alias("gap_break"));
    aggs.push(count(g().gt_eq(lit(600_000_000i64))).alias("rest_breaks"));
    aggs.push(count(g().gt_eq(lit(1_800_000_000i64))).alias("meal_breaks"));
    aggs.push(
        (col("prev_act_ts").filter(g().gt_eq(lit(1_800_000_000i64))).min()
            - col("ts_us").filter(col("act")).min())
        .alias("meal_after_us"),
    );

    base.group_by([col("shift_id")])
        .agg(aggs)
        .join(stretches, [col("shift_id")], [col("shift_id")], JoinArgs::new(JoinType::Left))
        .filter(col("start_us").is_not_null())
}

/// Shifts of events already in memory (tests).
pub fn frame_shifts(events: DataFrame, m: &ShiftModel) -> Result<Vec<Shift>, AnalyzeError> {
    let df = shift_query(events.lazy(), m).collect()?;
    frame_to_shifts(&df)
}

fn frame_to_shifts(df: &DataFrame) -> Result<Vec<Shift>, AnalyzeError> {
    let s = |n: &str| df.column(n).map(|c| c.as_materialized_series().clone());
    let site = s("site")?;
    let site = site.str()?;
    let team = s("team")?;
    let team = team.str()?;
    let zone = s("zone")?;
    let zone = zone.str()?;
    let u64c = |n: &str| -> Result<UInt64Chunked, AnalyzeError> {
        Ok(s(n)?.cast(&DataType::UInt64)?.u64()?.clone())
    };
    let i64c =
        |n: &str| -> Result<Int64Chunked, AnalyzeError> { Ok(s(n)?.cast(&DataType::Int64)?.i64()?.clone()) };
    let f64c = |n: &str| -> Result<Float64Chunked, AnalyzeError> {
        Ok(s(n)?.cast(&DataType::Float64)?.f64()?.clone())
    };
    let worker = u64c("worker")?;
    let (start, end, offset, brk, longest, inferred) = (
        i64c("start_us")?,
        i64c("end_us")?,
        i64c("offset_s")?,
        i64c("break_us")?,
        i64c("longest_stretch_us")?,
        // Summaries written before this column existed read as zero.
        if df.column("inferred_break_us").is_ok() {
            i64c("inferred_break_us")?
        } else {
            Int64Chunked::full("inferred_break_us".into(), 0, df.height())
        },
    );
    let (scans, units, weight_n, intervals, rush) =
        (u64c("scans")?, u64c("units")?, u64c("weight_n")?, u64c("intervals")?, u64c("rush")?);
    let weight = f64c("weight_kg")?;
    let (idle, speed, just, inbrk) =
        (u64c("idle_flags")?, u64c("speed_flags")?, u64c("justifications")?, u64c("flags_in_breaks")?);
    let (idle_min, speed_min) = (f64c("idle_min_s")?, f64c("speed_min_s")?);
    // Summaries written before these columns existed: the longest stretch
    // stands for the first, and one stretch for the count.
    let first_stretch =
        if df.column("first_stretch_us").is_ok() { i64c("first_stretch_us")? } else { longest.clone() };
    let stretches = if df.column("stretches").is_ok() {
        u64c("stretches")?
    } else {
        UInt64Chunked::full("stretches".into(), 1, df.height())
    };
    let (rest_breaks, meal_after, meal_breaks) = (
        u64c("rest_breaks")?,
        i64c("meal_after_us")?,
        if df.column("meal_breaks").is_ok() {
            u64c("meal_breaks")?
        } else {
            UInt64Chunked::full("meal_breaks".into(), 0, df.height())
        },
    );
    let hist: Vec<UInt64Chunked> =
        (0..=HIST_BOUNDS_S.len()).map(|i| u64c(&format!("hist_{i}"))).collect::<Result<_, _>>()?;
    // Summaries written before these columns existed: every request's gap
    // is unknown, and no idle flag is known to be at a latency threshold.
    let zero = |n: &str| UInt64Chunked::full(n.into(), 0, df.height());
    let jgaps: Vec<UInt64Chunked> = JUSTIFY_GAP_BUCKETS
        .iter()
        .map(|b| {
            let name = format!("jgap_{b}");
            if df.column(&name).is_ok() {
                u64c(&name)
            } else if *b == "unknown" {
                Ok(just.clone())
            } else {
                Ok(zero(&name))
            }
        })
        .collect::<Result<_, _>>()?;
    let target_uph = if df.column("target_uph").is_ok() {
        f64c("target_uph")?
    } else {
        Float64Chunked::full_null("target_uph".into(), df.height())
    };
    let process = if df.column("process").is_ok() {
        u64c("process")?
    } else {
        UInt64Chunked::full_null("process".into(), df.height())
    };
    let opt_u64 = |n: &str| -> Result<UInt64Chunked, AnalyzeError> {
        if df.column(n).is_ok() {
            u64c(n)
        } else {
            Ok(UInt64Chunked::full(n.into(), 0, df.height()))
        }
    };
    let prompts = opt_u64("prompts")?;
    let pconf: Vec<UInt64Chunked> =
        (0..=PROMPT_BOUNDS_S.len()).map(|i| opt_u64(&format!("pconf_{i}"))).collect::<Result<_, _>>()?;
    let dictated = if df.column("dictated_us").is_ok() {
        i64c("dictated_us")?
    } else {
        Int64Chunked::full("dictated_us".into(), 0, df.height())
    };
    let (units_first, units_last) = (opt_u64("units_first_hour")?, opt_u64("units_last_hour")?);
    let latency_idle = if df.column("latency_idle_flags").is_ok() {
        u64c("latency_idle_flags")?
    } else {
        zero("latency_idle_flags")
    };
    let gaps: Vec<UInt64Chunked> =
        GAP_CLASSES.iter().map(|g| u64c(&format!("gap_{g}"))).collect::<Result<_, _>>()?;
    let mut labels: std::collections::HashMap<String, Arc<str>> = Default::default();
    let mut intern = |s: &str| labels.entry(s.to_string()).or_insert_with(|| Arc::from(s)).clone();
    let mut out = Vec::with_capacity(df.height());
    for i in 0..df.height() {
        let z = |c: &UInt64Chunked| c.get(i).unwrap_or(0);
        let mut h = [0u64; HIST_BOUNDS_S.len() + 1];
        for (j, c) in hist.iter().enumerate() {
            h[j] = z(c);
        }
        let mut g = [0u64; GAP_CLASSES.len()];
        for (j, c) in gaps.iter().enumerate() {
            g[j] = z(c);
        }
        let mut pc = [0u64; PROMPT_BOUNDS_S.len() + 1];
        for (j, c) in pconf.iter().enumerate() {
            pc[j] = z(c);
        }
        let mut jg = [0u64; JUSTIFY_GAP_BUCKETS.len()];
        for (j, c) in jgaps.iter().enumerate() {
            jg[j] = z(c);
        }
        let start_us = start.get(i).unwrap_or(0);
        let end_us = end.get(i).unwrap_or(start_us);
        out.push(Shift {
            site: intern(site.get(i).unwrap_or("")),
            worker: z(&worker),
            team: team.get(i).map(&mut intern),
            zone: zone.get(i).map(&mut intern),
            start_us,
            end_us,
            offset_s: offset.get(i).unwrap_or(0) as i32,
            break_us: brk.get(i).unwrap_or(0),
            longest_stretch_us: longest.get(i).unwrap_or(0),
            inferred_break_us: inferred.get(i).unwrap_or(0),
            first_stretch_us: first_stretch.get(i).unwrap_or(0),
            stretches: stretches.get(i).unwrap_or(1),
            scans: z(&scans),
            units: z(&units),
            weight_kg: (z(&weight_n) > 0).then(|| weight.get(i).unwrap_or(0.0)),
            intervals: z(&intervals),
            rush: z(&rush),
            hist: h,
            gaps: g,
            idle_flags: z(&idle),
            idle_min_s: idle_min.get(i),
            speed_flags: z(&speed),
            speed_min_s: speed_min.get(i),
            justifications: z(&just),
            justify_gaps: jg,
            latency_idle_flags: z(&latency_idle),
            target_uph: target_uph.get(i),
            process: process.get(i).map(|p| p as u8),
            prompts: z(&prompts),
            prompt_conf: pc,
            dictated_us: dictated.get(i).unwrap_or(0),
            units_first_hour: z(&units_first),
            units_last_hour: z(&units_last),
            flags_in_breaks: z(&inbrk),
            rest_breaks: z(&rest_breaks),
            meal_after_us: meal_after.get(i),
            meal_breaks: z(&meal_breaks),
        });
    }
    out.sort_by(|a, b| (&a.site, a.worker, a.start_us).cmp(&(&b.site, b.worker, b.start_us)));
    Ok(out)
}

/// Scan arguments for files of the service's store: hive partitioning off
/// (`site` is a column of the files already) and, where given, an explicit
/// schema.
fn store_scan_args(schema: Option<Schema>) -> ScanArgsParquet {
    let mut args = ScanArgsParquet::default();
    args.hive_options.enabled = Some(false);
    // Paths are paths, never glob patterns.
    args.glob = false;
    args.schema = schema.map(Arc::new);
    args
}

/// The shift table of a set of raw event files, as a frame (the service's
/// `summaries` tier stores it as is). Repeated event ids are dropped first:
/// a producer may have sent an event twice, past the door's filter.
pub fn files_shift_frame(files: &[std::path::PathBuf], m: &ShiftModel) -> Result<DataFrame, AnalyzeError> {
    if files.is_empty() {
        return Ok(DataFrame::empty());
    }
    let paths = files.iter().map(|p| PlRefPath::new(p.to_string_lossy().to_string()));
    let lf = LazyFrame::scan_parquet_files(
        paths.collect(),
        store_scan_args(Some(vigie_ingest::store::store_schema())),
    )?;
    let lf = lf.unique_stable(Some(cols(["event_id"])), UniqueKeepStrategy::First);
    Ok(shift_query(lf, m).collect()?)
}

/// Shifts of a frame made by [`files_shift_frame`] or read back from the
/// `summaries` tier.
pub fn shifts_of_frame(df: &DataFrame) -> Result<Vec<Shift>, AnalyzeError> {
    if df.height() == 0 {
        return Ok(Vec::new());
    }
    frame_to_shifts(df)
}

/// Reads shift frames written by the service (one file per site and day).
pub fn read_shift_files(files: &[std::path::PathBuf]) -> Result<Vec<Shift>, AnalyzeError> {
    if files.is_empty() {
        return Ok(Vec::new());
    }
    let paths = files.iter().map(|p| PlRefPath::new(p.to_string_lossy().to_string()));
    let df = LazyFrame::scan_parquet_files(paths.collect(), store_scan_args(None))?.collect()?;
    shifts_of_frame(&df)
}
