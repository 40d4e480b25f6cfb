//! The shifts of an audit's bucket in one pass over its events, in Rust.
//!
//! [`crate::shifts::shift_query`] states the shift model as a Polars query:
//! some forty whole-column expressions, each a pass over the bucket, after
//! a sort and a gather of every column. Here the rows, 72 bytes each with
//! their labels coded once, are grouped by site and worker (a stable
//! counting sort that moves each row once) and each
//! group is read once, in time order, keeping the running state the
//! query's forward and backward fills stand for. Same definitions
//! (docs/metrics.md), same shifts: `fold_matches_the_query` (tests below)
//! holds the two equal on random streams of every kind of event, and
//! `the_spill_folds_to_the_query_s_shifts` does so through the spill files
//! the audit reads. One known difference: a sum of `weight_kg` is added in
//! order here and blockwise by Polars, so the two may differ in the last
//! bit.

use std::collections::HashMap;
use std::sync::Arc;

use polars::prelude::*;

use crate::shifts::{
    Shift, ShiftModel, CHAIN_S, GAP_CLASSES, HIST_BOUNDS_S, JUSTIFY_GAP_BUCKETS, PROMPT_BOUNDS_S,
};
use vigie_ingest::event::Kind;

type Fast<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Seconds to whole microseconds, as the query rounds its bounds.
fn us(s: f64) -> i64 {
    (s * 1e6).round() as i64
}

/// One event of a bucket, as the fold reads it: 72 bytes, so that the
/// sort moves each event once. Missing numbers are NaN (the door lets no
/// NaN through; a frame that holds one goes to the query).
#[derive(Clone, Copy)]
struct Row {
    ts: i64,
    worker: u64,
    weight: f64,
    threshold: f64,
    gap_s: f64,
    target: f64,
    site: u32,
    /// Label codes, [`NONE`] when missing.
    team: u32,
    zone: u32,
    quantity: u32,
    offset: i32,
    kind: u8,
    /// [`NO_PROCESS`] when missing.
    process: u8,
    has_quantity: bool,
}

const NONE: u32 = u32::MAX;
const NO_PROCESS: u8 = u8::MAX;

fn some(x: f64) -> Option<f64> {
    (!x.is_nan()).then_some(x)
}

/// A bucket's labels (sites, teams, zones) as codes into one table,
/// matched by text.
#[derive(Default)]
struct Labels {
    by_text: Fast<Arc<str>, u32>,
    names: Vec<Arc<str>>,
}

impl Labels {
    fn code(&mut self, s: &str) -> u32 {
        if let Some(c) = self.by_text.get(s) {
            return *c;
        }
        let a: Arc<str> = Arc::from(s);
        self.names.push(a.clone());
        let c = (self.names.len() - 1) as u32;
        self.by_text.insert(a, c);
        c
    }
}

/// A numeric column of a frame, as `T`.
fn values<T: PolarsNumericType>(df: &DataFrame, name: &str) -> PolarsResult<Vec<Option<T::Native>>> {
    let s = df.column(name)?.as_materialized_series().cast(&T::get_static_dtype())?;
    Ok(s.unpack::<T>()?.iter().collect())
}

/// The shifts of a bucket's events (the columns of
/// `shifts::query_columns`, in any order), sorted by site, worker
/// and start. `None` when a key column (site, worker, time, kind or offset)
/// holds a null or a number is NaN: the Polars query takes those. (The
/// audit folds its spill files, [`fold_spill`]; this is the frame's way
/// in, for the tests that hold the fold to the query.)
pub fn fold_shifts(df: &DataFrame, m: &ShiftModel) -> Result<Option<Vec<Shift>>, crate::AnalyzeError> {
    for k in ["site", "worker", "ts_us", "kind", "offset_s"] {
        if df.column(k)?.null_count() > 0 {
            return Ok(None);
        }
    }
    let mut labels = Labels::default();
    let mut codes = |name: &str| -> PolarsResult<Vec<u32>> {
        Ok(df.column(name)?.str()?.iter().map(|v| v.map_or(NONE, |s| labels.code(s))).collect())
    };
    let (site, team, zone) = (codes("site")?, codes("team")?, codes("zone")?);
    let (ts, worker) = (values::<Int64Type>(df, "ts_us")?, values::<UInt64Type>(df, "worker")?);
    let (offset, kind) = (values::<Int32Type>(df, "offset_s")?, values::<UInt8Type>(df, "kind")?);
    let (process, quantity) = (values::<UInt8Type>(df, "process")?, values::<UInt32Type>(df, "quantity")?);
    let [weight, threshold, gap_s, target] =
        ["weight_kg", "threshold_s", "gap_s", "target_per_hour"].map(|name| values::<Float64Type>(df, name));
    let (weight, threshold, gap_s, target) = (weight?, threshold?, gap_s?, target?);
    if [&weight, &threshold, &gap_s, &target].iter().any(|c| c.iter().flatten().any(|x| x.is_nan())) {
        return Ok(None);
    }
    let rows: Vec<Row> = (0..df.height())
        .map(|i| Row {
            ts: ts[i].unwrap_or(0),
            worker: worker[i].unwrap_or(0),
            weight: weight[i].unwrap_or(f64::NAN),
            threshold: threshold[i].unwrap_or(f64::NAN),
            gap_s: gap_s[i].unwrap_or(f64::NAN),
            target: target[i].unwrap_or(f64::NAN),
            site: site[i],
            team: team[i],
            zone: zone[i],
            quantity: quantity[i].unwrap_or(0),
            offset: offset[i].unwrap_or(0),
            kind: kind[i].unwrap_or(0),
            process: process[i].unwrap_or(NO_PROCESS),
            has_quantity: quantity[i].is_some(),
        })
        .collect();
    Ok(Some(fold_rows(&rows, &labels.names, m)))
}

/// The shifts of one bucket of the audit's spill (its files, named),
/// leaving out the events whose `seq` is in `dropped` (the duplicates the
/// door found after the read, sorted), sorted by site, worker and start.
pub fn fold_spill(
    files: &[std::path::PathBuf],
    dropped: &[u64],
    m: &ShiftModel,
) -> Result<Vec<Shift>, crate::AnalyzeError> {
    use vigie_ingest::spill::{NO_LABEL, NO_QUANTITY};
    let mut labels = Labels::default();
    let mut rows: Vec<Row> = Vec::new();
    for path in files {
        let c = vigie_ingest::spill::read(path).map_err(|e| crate::AnalyzeError::io(path, e))?;
        // The file's label codes as the bucket's.
        let local: Vec<u32> = c.labels.iter().map(|l| labels.code(l)).collect();
        let label = |c: u32| if c == NO_LABEL { NONE } else { local[c as usize] };
        rows.reserve(c.len());
        for i in 0..c.len() {
            if !dropped.is_empty() && dropped.binary_search(&c.seq[i]).is_ok() {
                continue;
            }
            let q = c.quantity[i];
            rows.push(Row {
                ts: c.ts_us[i],
                worker: c.worker[i],
                weight: c.weight_kg[i],
                threshold: c.threshold_s[i],
                gap_s: c.gap_s[i],
                target: c.target_per_hour[i],
                site: local[c.site[i] as usize],
                team: label(c.team[i]),
                zone: label(c.zone[i]),
                quantity: if q == NO_QUANTITY { 0 } else { q },
                offset: c.offset_s[i],
                kind: c.kind[i],
                process: c.process[i],
                has_quantity: q != NO_QUANTITY,
            });
        }
    }
    Ok(fold_rows(&rows, &labels.names, m))
}

fn fold_rows(rows: &[Row], names: &[Arc<str>], m: &ShiftModel) -> Vec<Shift> {
    let (sorted, starts) = group_sorted(rows);
    let mut f = Folder::new(names, m);
    for g in starts.windows(2) {
        f.group(&sorted[g[0]..g[1]]);
    }
    let mut out = f.out;
    out.sort_by(|a, b| (&a.site, a.worker, a.start_us).cmp(&(&b.site, b.worker, b.start_us)));
    out
}

/// The rows grouped by site and worker (groups in the order met), by time
/// and kind within a group, ties in the order read; and where each group
/// starts. A stable counting sort; a group is sorted only when its events
/// came out of order.
fn group_sorted(rows: &[Row]) -> (Vec<Row>, Vec<usize>) {
    let mut groups: Fast<(u32, u64), u32> = Fast::default();
    let mut counts: Vec<usize> = Vec::new();
    let mut last: Option<((u32, u64), u32)> = None;
    let gid: Vec<u32> = rows
        .iter()
        .map(|r| {
            let key = (r.site, r.worker);
            let g = match last {
                Some((k, g)) if k == key => g,
                _ => {
                    let next = groups.len() as u32;
                    let g = *groups.entry(key).or_insert(next);
                    if g == next {
                        counts.push(0);
                    }
                    last = Some((key, g));
                    g
                }
            };
            counts[g as usize] += 1;
            g
        })
        .collect();
    let mut starts = Vec::with_capacity(counts.len() + 1);
    let mut acc = 0;
    for c in &counts {
        starts.push(acc);
        acc += c;
    }
    starts.push(acc);
    let mut fill = starts.clone();
    let Some(first) = rows.first() else {
        return (Vec::new(), vec![0]);
    };
    let mut sorted = vec![*first; rows.len()];
    for (r, g) in rows.iter().zip(&gid) {
        let at = &mut fill[*g as usize];
        sorted[*at] = *r;
        *at += 1;
    }
    for g in starts.windows(2) {
        let group = &mut sorted[g[0]..g[1]];
        let key = |r: &Row| (r.ts, r.kind);
        if group.windows(2).any(|w| key(&w[0]) > key(&w[1])) {
            // Stable: equal times and kinds stay in the order read.
            group.sort_by_key(key);
        }
    }
    (sorted, starts)
}

const SCAN: u8 = Kind::Scan as u8;
const PROMPT: u8 = Kind::VoicePrompt as u8;
const SHIFT_START: u8 = Kind::ShiftStart as u8;
const SHIFT_END: u8 = Kind::ShiftEnd as u8;
const BREAK_START: u8 = Kind::BreakStart as u8;
const BREAK_END: u8 = Kind::BreakEnd as u8;
const IDLE: u8 = Kind::IdleFlag as u8;
const SPEED: u8 = Kind::SpeedFlag as u8;
const JUSTIFY: u8 = Kind::JustificationRequest as u8;

fn is_act(k: u8) -> bool {
    k <= PROMPT
}

/// The shift being built, and its current stretch.
struct Open {
    shift: Shift,
    /// Its first row in the group, for the last hour's units.
    from: usize,
    /// Sum of `weight_kg` over scans, and how many scans carried one.
    weight: f64,
    weight_n: u64,
    /// First team and zone given ([`NONE`] until then).
    team: u32,
    zone: u32,
    /// Current stretch: its number and first and last kept times.
    stretch: Option<(u64, i64, i64)>,
    longest: Option<i64>,
    first_stretch: Option<i64>,
    stretches: u64,
    target: Option<f64>,
}

struct Folder<'a> {
    names: &'a [Arc<str>],
    m: ShiftModel,
    out: Vec<Shift>,
    /// The stretch number: one more at each cut, as the query's cumulative
    /// sum (stretches never straddle shifts: the key is the pair).
    stretch_no: u64,
    /// Per row of the current group: the time and kind of the next
    /// activity event after it.
    next_act: Vec<Option<(i64, u8)>>,
    /// The histogram's and the prompt buckets' bounds, microseconds.
    hist_us: [i64; HIST_BOUNDS_S.len()],
    prompt_us: [i64; PROMPT_BOUNDS_S.len()],
}

impl<'a> Folder<'a> {
    fn new(names: &'a [Arc<str>], m: &ShiftModel) -> Self {
        Folder {
            names,
            m: *m,
            out: Vec::new(),
            stretch_no: 0,
            next_act: Vec::new(),
            hist_us: HIST_BOUNDS_S.map(us),
            prompt_us: PROMPT_BOUNDS_S.map(us),
        }
    }

    fn group(&mut self, rows: &[Row]) {
        let m = self.m;
        // The next activity event after each row, read backwards.
        self.next_act.clear();
        self.next_act.resize(rows.len(), None);
        let mut next = None;
        for (j, row) in rows.iter().enumerate().rev() {
            self.next_act[j] = next;
            if is_act(row.kind) {
                next = Some((row.ts, row.kind));
            }
        }
        let (break_min, shift_gap, rush) = (us(m.break_min_s), us(m.shift_gap_s), us(m.rush_s));
        let (hist_us, prompt_us) = (self.hist_us, self.prompt_us);
        let (latency_from, idle_from) = (us(m.latency_from_s), us(m.idle_from_s));
        // Running state before the current row.
        let mut in_break = false;
        let mut open_shift = false;
        let mut prev_act: Option<(i64, u8)> = None;
        let mut prev_kept: Option<i64> = None;
        let mut last_break_start: Option<i64> = None;
        let mut target_ff: f64 = -1.0;
        // The previous scan of the current shift.
        let mut prev_scan: Option<i64> = None;
        let mut cur: Option<Open> = None;
        for (j, row) in rows.iter().enumerate() {
            let (ts, k) = (row.ts, row.kind);
            let act = is_act(k);
            let in_break_before = in_break;
            let open_before = open_shift;
            // States after this row.
            if k == BREAK_START {
                in_break = true;
            } else if k == BREAK_END || k == SHIFT_START || k == SHIFT_END {
                in_break = false;
            }
            if k == SHIFT_START {
                open_shift = true;
            } else if k == SHIFT_END {
                open_shift = false;
            }
            if k == BREAK_START {
                last_break_start = Some(ts);
            }
            if let Some(t) = some(row.target) {
                target_ff = t;
            }
            let gap = prev_act.map(|(t, _)| ts - t);
            let kept = act && (!in_break_before || k == BREAK_END);
            let new_shift = act
                && match prev_act {
                    None => true,
                    Some((_, pk)) => {
                        k == SHIFT_START || pk == SHIFT_END || (gap.unwrap_or(0) >= shift_gap && !open_before)
                    }
                };
            if new_shift {
                if let Some(o) = cur.take() {
                    self.close(o, &rows[..j]);
                }
                cur = Some(self.open(row, j));
                prev_scan = None;
            }
            let Some(o) = cur.as_mut() else {
                // Before the worker's first activity event: no shift.
                if act {
                    prev_act = Some((ts, k));
                }
                if kept {
                    prev_kept = Some(ts);
                }
                continue;
            };
            if o.team == NONE {
                o.team = row.team;
            }
            if o.zone == NONE {
                o.zone = row.zone;
            }
            // Stretches: cut at a new shift or a stop of the break length
            // between kept events.
            if kept {
                let cut = new_shift || prev_kept.is_none_or(|p| ts - p >= break_min);
                if cut {
                    self.stretch_no += 1;
                }
                match o.stretch {
                    Some((no, first, _)) if no == self.stretch_no => o.stretch = Some((no, first, ts)),
                    _ => {
                        end_stretch(o);
                        o.stretch = Some((self.stretch_no, ts, ts));
                    }
                }
            }
            let s = &mut o.shift;
            if act {
                s.end_us = ts;
            }
            let declared_end = k == BREAK_END && in_break_before;
            if declared_end {
                if let Some(b) = last_break_start {
                    s.break_us += ts - b;
                }
            }
            if kept && !new_shift && !declared_end {
                if let Some(p) = prev_kept.filter(|p| ts - p >= break_min) {
                    s.inferred_break_us += ts - p;
                }
            }
            // Polars divides a column by a scalar as a product with its
            // inverse: the same here, to the last bit.
            let flag_value = some(row.threshold).or(gap.map(|g| g as f64 * (1.0 / 1e6)));
            match k {
                SCAN => {
                    s.scans += 1;
                    if row.has_quantity {
                        let q = u64::from(row.quantity);
                        s.units += q;
                        if ts < s.start_us + 3_600_000_000 {
                            s.units_first_hour += q;
                        }
                    }
                    if let Some(w) = some(row.weight) {
                        o.weight += w;
                        o.weight_n += 1;
                    }
                    if s.process.is_none() && row.process != NO_PROCESS {
                        s.process = Some(row.process);
                    }
                    if !new_shift {
                        if let Some(p) = prev_scan {
                            let iv = ts - p;
                            s.intervals += 1;
                            if iv < rush {
                                s.rush += 1;
                            }
                            let b = hist_bucket(iv, &hist_us);
                            if let Some(b) = b {
                                s.hist[b] += 1;
                            }
                        }
                    }
                }
                IDLE => {
                    s.idle_flags += 1;
                    if let Some(v) = flag_value {
                        s.idle_min_s = Some(s.idle_min_s.map_or(v, |x| x.min(v)));
                        if v >= m.latency_from_s && v < m.idle_from_s {
                            s.latency_idle_flags += 1;
                        }
                    }
                }
                SPEED => {
                    s.speed_flags += 1;
                    if let Some(v) = some(row.threshold) {
                        s.speed_min_s = Some(s.speed_min_s.map_or(v, |x| x.min(v)));
                    }
                }
                JUSTIFY => {
                    s.justifications += 1;
                    let b = match some(row.gap_s) {
                        None => Some(5),
                        Some(g) if g < 0.0 => None,
                        Some(g) if g < 60.0 => Some(0),
                        Some(g) if g < 180.0 => Some(1),
                        Some(g) if g < 300.0 => Some(2),
                        Some(g) if g < 600.0 => Some(3),
                        Some(g) if g >= 600.0 => Some(4),
                        // NaN: in no bucket.
                        Some(_) => None,
                    };
                    if let Some(b) = b {
                        s.justify_gaps[b] += 1;
                    }
                }
                PROMPT => {
                    s.prompts += 1;
                    if let Some((nts, SCAN)) = self.next_act[j] {
                        let wait = nts - ts;
                        if let Some(b) = prompt_bucket(wait, &prompt_us) {
                            s.prompt_conf[b] += 1;
                        }
                        if let Some((pts, SCAN)) = prev_act {
                            if ts - pts <= us(CHAIN_S) {
                                s.dictated_us += wait;
                            }
                        }
                    }
                }
                _ => {}
            }
            if (k == IDLE || k == JUSTIFY) && in_break_before {
                s.flags_in_breaks += 1;
            }
            if target_ff >= 0.0 {
                o.target = Some(target_ff);
            }
            let s = &mut o.shift;
            // Gaps between consecutive activity events of the shift.
            if act && !new_shift {
                if let Some(g) = gap {
                    let brk = g >= break_min || declared_end;
                    let class = if brk {
                        3
                    } else if g < latency_from {
                        0
                    } else if g < idle_from {
                        1
                    } else {
                        2
                    };
                    s.gaps[class] += 1;
                    if g >= 600_000_000 {
                        s.rest_breaks += 1;
                    }
                    if g >= 1_800_000_000 {
                        s.meal_breaks += 1;
                        if s.meal_after_us.is_none() {
                            if let Some((p, _)) = prev_act {
                                s.meal_after_us = Some(p - s.start_us);
                            }
                        }
                    }
                }
            }
            if k == SCAN {
                prev_scan = Some(ts);
            }
            if act {
                prev_act = Some((ts, k));
            }
            if kept {
                prev_kept = Some(ts);
            }
        }
        if let Some(o) = cur.take() {
            self.close(o, rows);
        }
    }

    fn open(&self, row: &Row, j: usize) -> Open {
        let ts = row.ts;
        Open {
            shift: Shift {
                site: self.names[row.site as usize].clone(),
                worker: row.worker,
                team: None,
                zone: None,
                start_us: ts,
                end_us: ts,
                offset_s: row.offset,
                break_us: 0,
                longest_stretch_us: 0,
                first_stretch_us: 0,
                stretches: 1,
                inferred_break_us: 0,
                scans: 0,
                units: 0,
                weight_kg: None,
                intervals: 0,
                rush: 0,
                hist: [0; HIST_BOUNDS_S.len() + 1],
                gaps: [0; GAP_CLASSES.len()],
                idle_flags: 0,
                idle_min_s: None,
                speed_flags: 0,
                speed_min_s: None,
                justifications: 0,
                justify_gaps: [0; JUSTIFY_GAP_BUCKETS.len()],
                latency_idle_flags: 0,
                target_uph: None,
                prompts: 0,
                prompt_conf: [0; PROMPT_BOUNDS_S.len() + 1],
                dictated_us: 0,
                units_first_hour: 0,
                units_last_hour: 0,
                process: None,
                flags_in_breaks: 0,
                rest_breaks: 0,
                meal_after_us: None,
                meal_breaks: 0,
            },
            from: j,
            weight: 0.0,
            weight_n: 0,
            team: NONE,
            zone: NONE,
            stretch: None,
            longest: None,
            first_stretch: None,
            stretches: 0,
            target: None,
        }
    }

    /// Ends a shift whose rows are `rows[o.from..]`.
    fn close(&mut self, mut o: Open, rows: &[Row]) {
        end_stretch(&mut o);
        let mut s = o.shift;
        let last_hour_from = s.end_us - 3_600_000_000;
        for row in &rows[o.from..] {
            if row.kind == SCAN && row.ts > last_hour_from {
                s.units_last_hour += u64::from(row.quantity);
            }
        }
        s.weight_kg = (o.weight_n > 0).then_some(o.weight);
        let name = |c: u32| (c != NONE).then(|| self.names[c as usize].clone());
        s.team = name(o.team);
        s.zone = name(o.zone);
        s.target_uph = o.target;
        if o.stretches > 0 {
            s.longest_stretch_us = o.longest.unwrap_or(0);
            s.first_stretch_us = o.first_stretch.unwrap_or(0);
            s.stretches = o.stretches;
        }
        self.out.push(s);
    }
}

fn end_stretch(o: &mut Open) {
    if let Some((_, first, last)) = o.stretch.take() {
        let len = last - first;
        o.longest = Some(o.longest.map_or(len, |l| l.max(len)));
        if o.first_stretch.is_none() {
            o.first_stretch = Some(len);
        }
        o.stretches += 1;
    }
}

/// The histogram bucket of an interval between scans: the first bound at
/// or above it (the first bucket also holds zero), or the last bucket.
fn hist_bucket(iv: i64, bounds_us: &[i64]) -> Option<usize> {
    if iv < 0 {
        return None;
    }
    Some(bounds_us.iter().position(|b| iv <= *b).unwrap_or(bounds_us.len()))
}

/// The bucket of the time from a prompt to its scan: bounds are
/// exclusive above, the last bucket open.
fn prompt_bucket(wait: i64, bounds_us: &[i64]) -> Option<usize> {
    if wait < 0 {
        return None;
    }
    Some(bounds_us.iter().position(|b| wait < *b).unwrap_or(bounds_us.len()))
}

/// Asserts two lists of shifts are the same; sums of `weight_kg` may
/// differ in their last bits (the order of a float sum).
#[doc(hidden)]
pub fn assert_same(fold: &[Shift], query: &[Shift]) {
    assert_eq!(fold.len(), query.len(), "shift counts differ");
    for (a, b) in fold.iter().zip(query) {
        let mut a2 = a.clone();
        match (a.weight_kg, b.weight_kg) {
            (Some(x), Some(y)) if (x - y).abs() <= 1e-9 * y.abs().max(1.0) => a2.weight_kg = b.weight_kg,
            _ => {}
        }
        assert_eq!(&a2, b, "fold (left) and query (right) differ");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shifts::frame_shifts;
    use rand::{Rng, SeedableRng};

    /// A random bucket: a few workers on one or two sites, every kind of
    /// event, gaps from a fraction of a second to hours, equal times,
    /// missing optional fields, rows out of time order.
    fn random_events(rng: &mut rand_chacha::ChaCha8Rng) -> DataFrame {
        let n = rng.gen_range(0..400);
        let workers = rng.gen_range(1..5u64);
        let mut t: Vec<i64> = (0..workers).map(|_| rng.gen_range(0..3_600_000_000i64)).collect();
        type Columns<'a> = (Vec<&'a str>, Vec<u64>, Vec<i64>, Vec<i32>, Vec<u8>);
        let mut cols: Columns<'_> = Default::default();
        let mut team = Vec::new();
        let mut zone = Vec::new();
        let mut quantity = Vec::new();
        let mut weight = Vec::new();
        let mut threshold = Vec::new();
        let mut gap_s = Vec::new();
        let mut target = Vec::new();
        let mut process = Vec::new();
        let sites = ["A", "B"];
        let gaps_s = [
            0.0, 0.3, 1.0, 1.25, 2.0, 4.0, 30.0, 59.0, 60.0, 200.0, 599.0, 600.0, 1199.0, 1200.0, 1800.0,
            2000.0, 10_799.0, 10_800.0, 20_000.0,
        ];
        for _ in 0..n {
            let w = rng.gen_range(0..workers);
            let g = gaps_s[rng.gen_range(0..gaps_s.len())];
            t[w as usize] += (g * 1e6) as i64 + rng.gen_range(0..3) * 1000;
            let kind: u8 = if rng.gen_bool(0.5) { SCAN } else { rng.gen_range(0..10) };
            let mut ts = t[w as usize];
            if rng.gen_bool(0.05) {
                // Out of order.
                ts -= rng.gen_range(0..600_000_000);
            }
            cols.0.push(sites[(w as usize + rng.gen_range(0..2) * usize::from(rng.gen_bool(0.1))) % 2]);
            cols.1.push(w);
            cols.2.push(ts);
            cols.3.push(if rng.gen_bool(0.5) { 3600 } else { 7200 });
            cols.4.push(kind);
            team.push(
                rng.gen_bool(0.7).then(|| ["t1", "t2", "team-of-the-night-shift"][rng.gen_range(0..3)]),
            );
            zone.push(rng.gen_bool(0.7).then(|| ["z1", "z2", "A"][rng.gen_range(0..3)]));
            quantity.push((kind == SCAN && rng.gen_bool(0.9)).then(|| rng.gen_range(1..5u32)));
            weight.push((kind == SCAN && rng.gen_bool(0.3)).then(|| rng.gen_range(0.1..20.0)));
            threshold.push(
                (kind == IDLE || kind == SPEED)
                    .then(|| {
                        rng.gen_bool(0.6)
                            .then(|| [30.0, 60.0, 120.0, 300.0, 600.0, 900.0][rng.gen_range(0..6)])
                    })
                    .flatten(),
            );
            gap_s.push(
                (kind == JUSTIFY)
                    .then(|| {
                        rng.gen_bool(0.8).then(|| {
                            [10.0, 60.0, 179.0, 180.0, 300.0, 599.0, 600.0, 3000.0][rng.gen_range(0..8)]
                        })
                    })
                    .flatten(),
            );
            target.push((kind == Kind::RateTarget as u8).then(|| rng.gen_range(50.0..200.0)));
            process.push((kind == SCAN && rng.gen_bool(0.5)).then(|| rng.gen_range(0..7u8)));
        }
        DataFrame::new_infer_height(vec![
            Column::new("site".into(), cols.0),
            Column::new("worker".into(), cols.1),
            Column::new("ts_us".into(), cols.2),
            Column::new("offset_s".into(), cols.3),
            Column::new("kind".into(), cols.4),
            Column::new("team".into(), team),
            Column::new("zone".into(), zone),
            Column::new("quantity".into(), quantity),
            Column::new("weight_kg".into(), weight),
            Column::new("threshold_s".into(), threshold),
            Column::new("gap_s".into(), gap_s),
            Column::new("target_per_hour".into(), target),
            Column::new("process".into(), process),
        ])
        .unwrap()
    }

    #[test]
    fn fold_matches_the_query() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let models = [
            ShiftModel::default(),
            ShiftModel {
                shift_gap_s: 1800.0,
                break_min_s: 600.0,
                rush_s: 2.0,
                latency_from_s: 30.0,
                idle_from_s: 300.0,
            },
        ];
        for case in 0..600 {
            let df = random_events(&mut rng);
            let m = &models[case % 2];
            let query = frame_shifts(df.clone(), m).unwrap();
            let fold = fold_shifts(&df, m).unwrap().unwrap();
            // Same shifts in the same order, whatever the query's group order.
            let mut q = query.clone();
            // (Two one-event shifts may start at the same time.)
            let key = |s: &Shift| format!("{s:?}");
            q.sort_by_key(key);
            let mut f = fold.clone();
            f.sort_by_key(key);
            assert!(std::panic::catch_unwind(|| assert_same(&f, &q)).is_ok(), "case {case} differs:\n{df}");
        }
    }

    /// The audit's path: events through the spill writer (several files
    /// per bucket, labels coded per file), some left out as duplicates,
    /// folded from the files, against the query on the events kept.
    #[test]
    fn the_spill_folds_to_the_query_s_shifts() {
        use vigie_ingest::event::{Device, Event, Process, Pseudonym};
        use vigie_ingest::store::{Durability, EventBatch, SpillWriter};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let m = ShiftModel::default();
        for case in 0..60 {
            let df = random_events(&mut rng);
            let n = df.height();
            let text = |c: &str, i: usize| df.column(c).unwrap().str().unwrap().get(i).map(Arc::<str>::from);
            let num = |c: &str, i: usize| df.column(c).unwrap().f64().unwrap().get(i);
            let events: Vec<Event> = (0..n)
                .map(|i| {
                    let kind = df.column("kind").unwrap().u8().unwrap().get(i).unwrap();
                    Event {
                        event_id: format!("e{i}"),
                        ts_us: df.column("ts_us").unwrap().i64().unwrap().get(i).unwrap(),
                        offset_s: df.column("offset_s").unwrap().i32().unwrap().get(i).unwrap(),
                        site: text("site", i).unwrap(),
                        // Every worker in one bucket or spread over two.
                        worker: Pseudonym(df.column("worker").unwrap().u64().unwrap().get(i).unwrap() << 62),
                        kind: Kind::from_code(kind).unwrap(),
                        // Labels longer than an Arrow view holds inline.
                        zone: text("zone", i).map(|z| Arc::from(format!("{z}-of-the-north-warehouse"))),
                        team: text("team", i),
                        process: df
                            .column("process")
                            .unwrap()
                            .u8()
                            .unwrap()
                            .get(i)
                            .and_then(Process::from_code),
                        device: (i % 3 == 0).then_some(Device::Scanner),
                        quantity: df.column("quantity").unwrap().u32().unwrap().get(i),
                        weight_kg: num("weight_kg", i),
                        threshold_s: num("threshold_s", i),
                        gap_s: num("gap_s", i),
                        target_per_hour: num("target_per_hour", i),
                    }
                })
                .collect();
            // Every seventh event is a duplicate the door found after the read.
            let dropped: Vec<u64> = (0..n as u64).filter(|s| s % 7 == 3).collect();
            let dir = tempfile::tempdir().unwrap();
            let mut w = SpillWriter::new(dir.path(), 2, 16, Durability::Scratch).unwrap();
            for (seq, e) in events.iter().enumerate() {
                let mut r = e.as_ref();
                r.seq = seq as u64;
                w.push_ref(r).unwrap();
            }
            let buckets = w.finish().unwrap();
            let mut folded = Vec::new();
            for b in &buckets {
                let mut files: Vec<_> = std::fs::read_dir(b).unwrap().map(|e| e.unwrap().path()).collect();
                files.sort();
                folded.extend(fold_spill(&files, &dropped, &m).unwrap());
            }
            let mut kept = EventBatch::default();
            for (seq, e) in events.into_iter().enumerate() {
                if dropped.binary_search(&(seq as u64)).is_err() {
                    kept.push(e);
                }
            }
            let query = frame_shifts(kept.take_frame().unwrap(), &m).unwrap();
            let key = |s: &Shift| format!("{s:?}");
            let (mut f, mut q) = (folded, query);
            f.sort_by_key(key);
            q.sort_by_key(key);
            assert!(std::panic::catch_unwind(|| assert_same(&f, &q)).is_ok(), "case {case} differs");
        }
    }

    #[test]
    fn a_null_key_is_left_to_the_query() {
        let df = df![
            "site" => [Some("A"), None],
            "worker" => [1u64, 1], "ts_us" => [0i64, 1], "offset_s" => [0i32, 0], "kind" => [SCAN, SCAN],
            "team" => [None::<&str>, None], "zone" => [None::<&str>, None], "quantity" => [Some(1u32), None],
            "weight_kg" => [None::<f64>, None], "threshold_s" => [None::<f64>, None], "gap_s" => [None::<f64>, None],
            "target_per_hour" => [None::<f64>, None], "process" => [None::<u8>, None],
        ]
        .unwrap();
        assert!(fold_shifts(&df, &ShiftModel::default()).unwrap().is_none());
    }
}
