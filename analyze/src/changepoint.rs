//! When the pace changed: changes in the mean of a daily series (a
//! group's daily median units per hour within one process), found by
//! binary segmentation with a penalty, and a bootstrap interval of each
//! change's relative size (docs/metrics.md, `cadence.intensification`).
//!
//! - **Cost** of a segment: the sum of squared deviations from its mean
//!   (a shift in the mean of a series with constant noise).
//! - **Penalty** for one more change: `2 σ² ln n`, the Schwarz criterion
//!   for a mean shift with the noise variance σ² known; σ is estimated
//!   robustly from the series itself, as the median absolute deviation of
//!   its first differences divided by √2 (times 1.4826 to read as a
//!   standard deviation), so that a step does not inflate it, and at
//!   least 1 % of the series' median, so that a series with almost no
//!   noise does not turn every wobble into a change.
//! - **Binary segmentation**: the split that lowers the cost most is kept
//!   when it lowers it by more than the penalty, with at least
//!   `min_segment` days on each side; each side is then searched again.
//!   (PELT gives the exact optimum of the same criterion; with a few
//!   hundred days at most and one or two changes, binary segmentation
//!   finds the same changes and is simpler to check by hand.)
//! - **Interval**: the change's relative size is median(after) /
//!   median(before) - 1 over the days of the two segments around it; its
//!   95 % interval is the 2.5th and 97.5th percentiles over 999 bootstrap
//!   resamples of the days of each segment (with replacement), drawn
//!   from a generator seeded by the caller, so that a run is repeatable.

/// One change in the mean of a series.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// Index of the first point after the change.
    pub at: usize,
    /// Medians of the segments before and after it.
    pub before: f64,
    /// Median of the segment after it.
    pub after: f64,
    /// after / before - 1.
    pub relative: f64,
    /// 95 % bootstrap interval of `relative`.
    pub low: f64,
    /// Upper bound of that interval (`low` is the lower).
    pub high: f64,
}

fn cost(x: &[f64]) -> f64 {
    if x.is_empty() {
        return 0.0;
    }
    let m = x.iter().sum::<f64>() / x.len() as f64;
    x.iter().map(|v| (v - m) * (v - m)).sum()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The noise's standard deviation, from the first differences.
pub fn noise_sd(x: &[f64]) -> f64 {
    if x.len() < 3 {
        return 0.0;
    }
    let mut d: Vec<f64> = x.windows(2).map(|w| w[1] - w[0]).collect();
    let m = median(&mut d);
    let mut dev: Vec<f64> = d.iter().map(|v| (v - m).abs()).collect();
    1.4826 * median(&mut dev) / std::f64::consts::SQRT_2
}

/// Indices where the mean changes (the first point after each change), in
/// order.
pub fn detect(x: &[f64], min_segment: usize) -> Vec<usize> {
    let n = x.len();
    let level = median(&mut x.iter().map(|v| v.abs()).collect::<Vec<_>>());
    let sd = noise_sd(x).max(0.01 * level);
    let penalty = 2.0 * sd * sd * (n.max(2) as f64).ln();
    let mut out = Vec::new();
    split(x, 0, min_segment.max(1), penalty, &mut out);
    out.sort_unstable();
    out
}

fn split(x: &[f64], offset: usize, min: usize, penalty: f64, out: &mut Vec<usize>) {
    if x.len() < 2 * min {
        return;
    }
    let whole = cost(x);
    let best = (min..=x.len() - min)
        .map(|k| (k, cost(&x[..k]) + cost(&x[k..])))
        .min_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
    if let Some((k, c)) = best {
        if whole - c > penalty && whole - c > 1e-9 {
            out.push(offset + k);
            split(&x[..k], offset, min, penalty, out);
            split(&x[k..], offset + k, min, penalty, out);
        }
    }
}

/// A small deterministic generator (SplitMix64): the same seed gives the
/// same intervals on every machine.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// The changes of `x` with their sizes and intervals.
pub fn changes(x: &[f64], min_segment: usize, seed: u64) -> Vec<Change> {
    let cuts = detect(x, min_segment);
    let mut bounds = vec![0];
    bounds.extend(&cuts);
    bounds.push(x.len());
    let mut rng = SplitMix(seed);
    cuts.iter()
        .enumerate()
        .filter_map(|(i, at)| compare(&x[bounds[i]..*at], &x[*at..bounds[i + 2]], bounds[i], &mut rng))
        .collect()
}

/// The relative size of the change between two given stretches of days
/// (before and after a dated event), with the same bootstrap interval:
/// `None` when either is empty or the median before is not positive.
pub fn before_after(before: &[f64], after: &[f64], seed: u64) -> Option<Change> {
    compare(before, after, 0, &mut SplitMix(seed))
}

/// Medians, relative change and its 95 % interval over 999 resamples of
/// each side; `start` is the index of `before`'s first point in the series.
fn compare(before: &[f64], after: &[f64], start: usize, rng: &mut SplitMix) -> Option<Change> {
    if before.is_empty() || after.is_empty() {
        return None;
    }
    let (b, a) = (median(&mut before.to_vec()), median(&mut after.to_vec()));
    if b <= 0.0 {
        return None;
    }
    let mut ratios = Vec::with_capacity(999);
    let (mut rb, mut ra) = (vec![0.0; before.len()], vec![0.0; after.len()]);
    for _ in 0..999 {
        for v in &mut rb {
            *v = before[rng.below(before.len())];
        }
        for v in &mut ra {
            *v = after[rng.below(after.len())];
        }
        let mb = median(&mut rb);
        if mb > 0.0 {
            ratios.push(median(&mut ra) / mb - 1.0);
        }
    }
    ratios.sort_by(f64::total_cmp);
    let pick = |q: f64| ratios.get(((ratios.len() as f64 - 1.0) * q).round() as usize).copied();
    Some(Change {
        at: start + before.len(),
        before: b,
        after: a,
        relative: a / b - 1.0,
        low: pick(0.025).unwrap_or(f64::NAN),
        high: pick(0.975).unwrap_or(f64::NAN),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_is_found_where_it_is_and_noise_alone_is_not_a_change() {
        // Ten days at 100 +- 1, then ten at 115 +- 1: one change at day 10.
        let noise = [0.5, -0.8, 1.0, -0.3, 0.2, -1.0, 0.7, -0.4, 0.9, -0.6];
        let x: Vec<f64> = (0..20).map(|i| if i < 10 { 100.0 } else { 115.0 } + noise[i % 10]).collect();
        assert_eq!(detect(&x, 3), vec![10]);
        let c = &changes(&x, 3, 7)[0];
        // Medians: the noise sorted is -1, -0.8, -0.6, -0.4, -0.3, 0.2,
        // 0.5, 0.7, 0.9, 1; its median is (-0.3 + 0.2) / 2 = -0.05, so
        // 99.95 before and 114.95 after: +0.15008.
        assert!((c.before - 99.95).abs() < 1e-9 && (c.after - 114.95).abs() < 1e-9, "{c:?}");
        assert!((c.relative - (114.95 / 99.95 - 1.0)).abs() < 1e-12);
        assert!(c.low > 0.13 && c.high < 0.17 && c.low <= c.relative && c.relative <= c.high, "{c:?}");
        // The same noise without the step: no change.
        let flat: Vec<f64> = (0..20).map(|i| 100.0 + noise[i % 10]).collect();
        assert!(detect(&flat, 3).is_empty());
        // Too short to split with 3 days a side.
        assert!(detect(&x[7..12], 3).is_empty());
    }

    #[test]
    fn the_noise_estimate_ignores_the_step() {
        // Noise of +-1 around 100, then around 150: the series' own
        // standard deviation is about 25, the noise estimated from first
        // differences stays near 1.
        let noise = [0.5, -0.8, 1.0, -0.3, 0.2, -1.0, 0.7, -0.4, 0.9, -0.6];
        let x: Vec<f64> = (0..20).map(|i| if i < 10 { 100.0 } else { 150.0 } + noise[i % 10]).collect();
        let sd = noise_sd(&x);
        assert!(sd > 0.3 && sd < 2.5, "{sd}");
        // A series with no noise at all: the floor, 1 % of its level, keeps
        // a wobble of 0.1 % from being a change.
        let still: Vec<f64> = (0..20).map(|i| if i == 12 { 100.1 } else { 100.0 }).collect();
        assert!(detect(&still, 3).is_empty());
    }
}
