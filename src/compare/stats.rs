//! The statistics behind `compare`: medians, a seeded bootstrap confidence interval of the
//! ratio of two medians, and robust (median absolute deviation) z-scores for fleet outliers.
//!
//! Everything here is a pure function of its input and a seed, so results are reproducible.

use crate::bench::stats::quantile;

/// A small, fast, seedable generator (SplitMix64). Good enough for resampling indices; not
/// for cryptography.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform index in `0..n` (`n > 0`), by Lemire's multiply-shift (bias below 2^-32 for
    /// the sample counts used here).
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }
}

/// FNV-1a of a string: derives a per-metric seed so that each metric's resampling is
/// independent of which other metrics are compared.
pub fn hash_str(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Median of the values (interpolated for an even count); NaN for none. Reorders `v`.
pub fn median_in_place(v: &mut [f64]) -> f64 {
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    let mid = n / 2;
    let (_, hi, _) = v.select_nth_unstable_by(mid, f64::total_cmp);
    let hi = *hi;
    if n % 2 == 1 {
        hi
    } else {
        let lo = v[..mid].iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (lo + hi) / 2.0
    }
}

/// Median of the values; NaN for none.
pub fn median(v: &[f64]) -> f64 {
    median_in_place(&mut v.to_vec())
}

/// At most `max` values that keep the distribution's shape: the values at evenly spaced
/// ranks of the sorted input (the smallest and largest included). Fewer values only widen
/// a bootstrap interval, never narrow it, so thinning keeps decisions conservative.
pub fn thin(samples: &[f64], max: usize) -> Vec<f64> {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    if sorted.len() <= max || max < 2 {
        return sorted;
    }
    let n = sorted.len();
    (0..max)
        .map(|i| sorted[(i * (n - 1) + (max - 1) / 2) / (max - 1)])
        .collect()
}

/// A two-sided confidence interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    pub low: f64,
    pub high: f64,
}

/// One side's samples in rounds, without non-positive or non-finite values and empty rounds.
pub fn clean_rounds(rounds: &[Vec<f64>]) -> Vec<Vec<f64>> {
    rounds
        .iter()
        .map(|r| {
            r.iter()
                .copied()
                .filter(|x| x.is_finite() && *x > 0.0)
                .collect::<Vec<f64>>()
        })
        .filter(|r| !r.is_empty())
        .collect()
}

/// One two-stage resample into `out`: as many rounds as there are, drawn with replacement,
/// and from each drawn round as many samples as it has, drawn with replacement.
fn resample_rounds(rounds: &[Vec<f64>], rng: &mut SplitMix64, out: &mut Vec<f64>) {
    out.clear();
    for _ in 0..rounds.len() {
        let round = &rounds[rng.below(rounds.len())];
        for _ in 0..round.len() {
            out.push(round[rng.below(round.len())]);
        }
    }
}

/// Percentile bootstrap interval of `median(base) / median(cur)`, each side's samples given
/// in rounds (a run's groups of iterations; one round when a run has no grouping). Each of
/// `resamples` draws resamples every side in two stages, rounds with replacement and then
/// samples within each drawn round with replacement (the hierarchical bootstrap), takes the
/// ratio of the pooled medians, and the `(1 - confidence) / 2` and `(1 + confidence) / 2`
/// quantiles of those ratios are the interval. Drawing rounds carries the spread *between*
/// rounds into the interval; with one round per side it is the plain bootstrap of samples.
///
/// With per-iteration *times* as input, the ratio is current throughput / baseline
/// throughput: below 1 means slower now. Returns `None` when a side has no positive finite
/// sample.
pub fn bootstrap_ratio_of_medians(
    base: &[Vec<f64>],
    cur: &[Vec<f64>],
    resamples: usize,
    confidence: f64,
    seed: u64,
) -> Option<Interval> {
    let (base, cur) = (clean_rounds(base), clean_rounds(cur));
    if base.is_empty() || cur.is_empty() {
        return None;
    }
    let mut rng = SplitMix64::new(seed);
    let resamples = resamples.max(1);
    let mut ratios = Vec::with_capacity(resamples);
    let (mut bb, mut cb) = (Vec::new(), Vec::new());
    for _ in 0..resamples {
        resample_rounds(&base, &mut rng, &mut bb);
        resample_rounds(&cur, &mut rng, &mut cb);
        ratios.push(median_in_place(&mut bb) / median_in_place(&mut cb));
    }
    ratios.sort_by(f64::total_cmp);
    let alpha = (1.0 - confidence.clamp(0.0, 1.0)) / 2.0;
    Some(Interval {
        low: quantile(&ratios, alpha),
        high: quantile(&ratios, 1.0 - alpha),
    })
}

/// Robust z-scores, `0.6745 · (x − median) / MAD` (Iglewicz and Hoaglin). The MAD is
/// floored at `min_mad` so that a fleet of near-identical values does not turn a tiny
/// difference into an infinite score. `None` for fewer than three values.
pub fn robust_z(values: &[f64], min_mad: f64) -> Option<Vec<f64>> {
    if values.len() < 3 {
        return None;
    }
    let m = median(values);
    let dev: Vec<f64> = values.iter().map(|x| (x - m).abs()).collect();
    let mad = median(&dev).max(min_mad);
    if mad.is_nan() || mad <= 0.0 {
        return None;
    }
    Some(values.iter().map(|x| 0.6745 * (x - m) / mad).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic noisy samples around `center` with relative spread `spread`.
    fn noisy(center: f64, spread: f64, n: usize, seed: u64) -> Vec<f64> {
        let mut rng = SplitMix64::new(seed);
        (0..n)
            .map(|_| {
                let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
                center * (1.0 + spread * (2.0 * u - 1.0))
            })
            .collect()
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn identical_samples_give_a_tight_interval_around_one() {
        let s = noisy(1.0e-3, 0.02, 200, 7);
        let ci = bootstrap_ratio_of_medians(
            std::slice::from_ref(&s),
            std::slice::from_ref(&s),
            2000,
            0.95,
            1,
        )
        .unwrap();
        assert!(ci.low <= 1.0 && ci.high >= 1.0, "{ci:?}");
        assert!(ci.high - ci.low < 0.01, "{ci:?}");
        // Constant samples: a point interval.
        let c = vec![2.0; 50];
        let ci = bootstrap_ratio_of_medians(
            std::slice::from_ref(&c),
            std::slice::from_ref(&c),
            500,
            0.95,
            1,
        )
        .unwrap();
        assert_eq!((ci.low, ci.high), (1.0, 1.0));
    }

    #[test]
    fn a_twenty_percent_slowdown_is_bracketed() {
        let base = noisy(1.0e-3, 0.02, 100, 1);
        let cur = noisy(1.25e-3, 0.02, 100, 2); // 1/1.25 = 0.8: 20 % less throughput
        let ci = bootstrap_ratio_of_medians(&[base], &[cur], 2000, 0.95, 3).unwrap();
        assert!(ci.low > 0.78 && ci.high < 0.82, "{ci:?}");
    }

    #[test]
    fn same_seed_same_interval_other_seed_close() {
        let base = vec![noisy(1.0, 0.1, 40, 1)];
        let cur = vec![noisy(1.02, 0.1, 40, 2)];
        let a = bootstrap_ratio_of_medians(&base, &cur, 1000, 0.95, 9).unwrap();
        let b = bootstrap_ratio_of_medians(&base, &cur, 1000, 0.95, 9).unwrap();
        assert_eq!(a, b);
        let c = bootstrap_ratio_of_medians(&base, &cur, 1000, 0.95, 10).unwrap();
        assert_ne!(a, c);
        assert!((a.low - c.low).abs() < 0.02);
    }

    #[test]
    fn empty_or_invalid_sides_have_no_interval() {
        assert!(bootstrap_ratio_of_medians(&[], &[vec![1.0]], 10, 0.95, 1).is_none());
        assert!(
            bootstrap_ratio_of_medians(&[vec![0.0, f64::NAN]], &[vec![1.0]], 10, 0.95, 1).is_none()
        );
    }

    /// Rounds whose levels differ: `rounds` rounds of `per` samples, round r centred at
    /// `center · (1 + level_spread · u_r)` with u_r uniform in [-1, 1], samples ±`spread`.
    fn rounds(
        center: f64,
        level_spread: f64,
        spread: f64,
        n: usize,
        per: usize,
        seed: u64,
    ) -> Vec<Vec<f64>> {
        let levels = noisy(1.0, level_spread, n, seed);
        levels
            .iter()
            .enumerate()
            .map(|(i, l)| noisy(center * l, spread, per, seed * 1000 + i as u64))
            .collect()
    }

    #[test]
    fn the_spread_between_rounds_widens_the_interval() {
        // Each round is tight (±1 %), but rounds sit up to ±4 % apart.
        let base = rounds(1.0, 0.04, 0.01, 8, 12, 1);
        let cur = rounds(1.0, 0.04, 0.01, 8, 12, 2);
        let pooled = |r: &[Vec<f64>]| vec![r.concat()];
        let flat =
            bootstrap_ratio_of_medians(&pooled(&base), &pooled(&cur), 2000, 0.95, 5).unwrap();
        let nested = bootstrap_ratio_of_medians(&base, &cur, 2000, 0.95, 5).unwrap();
        let width = |i: Interval| i.high - i.low;
        assert!(
            width(nested) > 1.5 * width(flat),
            "flat {flat:?}, nested {nested:?}"
        );
        // The known answer (ratio 1) is inside the nested interval.
        assert!(nested.low < 1.0 && nested.high > 1.0, "{nested:?}");
        // Rounds with identical levels: about as wide as the flat interval.
        let even_b = rounds(1.0, 0.0, 0.01, 8, 12, 3);
        let even_c = rounds(1.0, 0.0, 0.01, 8, 12, 4);
        let a = bootstrap_ratio_of_medians(&even_b, &even_c, 2000, 0.95, 6).unwrap();
        let b =
            bootstrap_ratio_of_medians(&pooled(&even_b), &pooled(&even_c), 2000, 0.95, 6).unwrap();
        assert!(width(a) < 1.6 * width(b), "{a:?} vs {b:?}");
        // Empty rounds are ignored.
        let mut with_empty = base.clone();
        with_empty.insert(3, Vec::new());
        with_empty.push(vec![f64::NAN, 0.0]);
        assert_eq!(
            bootstrap_ratio_of_medians(&with_empty, &cur, 100, 0.95, 5),
            bootstrap_ratio_of_medians(&base, &cur, 100, 0.95, 5)
        );
    }

    #[test]
    fn thinning_keeps_extremes_and_count() {
        let v: Vec<f64> = (0..10_000).map(f64::from).collect();
        let t = thin(&v, 1000);
        assert_eq!(t.len(), 1000);
        assert_eq!(t[0], 0.0);
        assert_eq!(t[999], 9999.0);
        assert!((median(&t) - median(&v)).abs() < 10.0);
        assert_eq!(thin(&[3.0, 1.0], 1000), vec![1.0, 3.0]);
    }

    #[test]
    fn robust_z_flags_the_odd_one() {
        let z = robust_z(&[100.0, 101.0, 99.0, 100.5, 70.0], 0.0).unwrap();
        assert!(z[4] < -3.5, "{z:?}");
        assert!(z[..4].iter().all(|z| z.abs() < 3.5), "{z:?}");
        assert!(robust_z(&[1.0, 2.0], 0.0).is_none());
        // All equal: MAD 0, floored.
        let z = robust_z(&[5.0, 5.0, 5.0, 5.0], 0.05).unwrap();
        assert!(z.iter().all(|z| *z == 0.0));
    }
}
