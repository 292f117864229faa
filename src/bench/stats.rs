//! Summary statistics of per-iteration times.

use crate::report::Stats;

/// The `q`-quantile (0..=1) of sorted samples, linearly interpolated.
pub(crate) fn quantile(sorted: &[f64], q: f64) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        1 => sorted[0],
        n => {
            let pos = q.clamp(0.0, 1.0) * (n - 1) as f64;
            let lo = pos.floor() as usize;
            let hi = pos.ceil() as usize;
            let frac = pos - lo as f64;
            sorted[lo] + (sorted[hi] - sorted[lo]) * frac
        }
    }
}

/// Median, p10, p90, mean, min, max and coefficient of variation. Empty input gives NaNs,
/// which no throughput check accepts.
pub fn summarize(samples: &[f64]) -> Stats {
    let mut sorted: Vec<f64> = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len() as f64;
    let mean = sorted.iter().sum::<f64>() / n;
    let var = if sorted.len() > 1 {
        sorted.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    Stats {
        median_s: quantile(&sorted, 0.5),
        p10_s: quantile(&sorted, 0.1),
        p90_s: quantile(&sorted, 0.9),
        mean_s: mean,
        min_s: sorted.first().copied().unwrap_or(f64::NAN),
        max_s: sorted.last().copied().unwrap_or(f64::NAN),
        cv: if mean > 0.0 {
            var.sqrt() / mean
        } else {
            f64::NAN
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_answers() {
        let s = summarize(&[5.0, 1.0, 4.0, 2.0, 3.0]);
        assert_eq!(s.median_s, 3.0);
        assert_eq!(s.min_s, 1.0);
        assert_eq!(s.max_s, 5.0);
        assert_eq!(s.mean_s, 3.0);
        assert!((s.p10_s - 1.4).abs() < 1e-12);
        assert!((s.p90_s - 4.6).abs() < 1e-12);
        // sample standard deviation of 1..5 is sqrt(2.5)
        assert!((s.cv - 2.5f64.sqrt() / 3.0).abs() < 1e-12);
    }

    #[test]
    fn even_count_median_interpolates() {
        assert_eq!(summarize(&[1.0, 2.0, 3.0, 10.0]).median_s, 2.5);
    }

    #[test]
    fn single_and_empty() {
        let s = summarize(&[0.25]);
        assert_eq!(
            (s.median_s, s.p10_s, s.p90_s, s.cv),
            (0.25, 0.25, 0.25, 0.0)
        );
        assert!(summarize(&[]).median_s.is_nan());
    }

    #[test]
    fn constant_samples_have_zero_spread() {
        let s = summarize(&[2.0; 10]);
        assert_eq!(s.cv, 0.0);
        assert_eq!(s.p90_s - s.p10_s, 0.0);
    }
}
