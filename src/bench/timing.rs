//! How long and how often a kernel runs: warm-up, then timed iterations until the time
//! budget is spent (within a minimum and maximum count).

use std::time::{Duration, Instant};

/// Iteration budget of one benchmark.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget {
    pub warmup: u32,
    pub min_iterations: u32,
    pub max_iterations: u32,
    /// Stop starting new iterations once this much time went into timed ones.
    pub duration: Duration,
}

/// Run `iteration` `budget.warmup` times untimed, then time it; each call returns the
/// seconds it took (measured by the caller: host clock here, device events on GPUs).
pub fn run<E>(
    budget: &Budget,
    mut iteration: impl FnMut() -> Result<f64, E>,
) -> Result<Vec<f64>, E> {
    for _ in 0..budget.warmup {
        iteration()?;
    }
    let started = Instant::now();
    let mut samples = Vec::new();
    while (samples.len() as u32) < budget.max_iterations
        && ((samples.len() as u32) < budget.min_iterations || started.elapsed() < budget.duration)
    {
        samples.push(iteration()?);
    }
    Ok(samples)
}

/// Time a host-side closure.
pub fn host_time(f: impl FnOnce()) -> f64 {
    let t = Instant::now();
    f();
    t.elapsed().as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn respects_min_and_max() {
        let b = Budget {
            warmup: 2,
            min_iterations: 3,
            max_iterations: 5,
            duration: Duration::ZERO,
        };
        let mut calls = 0;
        let s = run::<()>(&b, || {
            calls += 1;
            Ok(1.0)
        })
        .unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(calls, 5);
        let b = Budget {
            duration: Duration::from_secs(3600),
            ..b
        };
        assert_eq!(run::<()>(&b, || Ok(1.0)).unwrap().len(), 5);
    }

    #[test]
    fn errors_stop_the_run() {
        let b = Budget {
            warmup: 0,
            min_iterations: 3,
            max_iterations: 5,
            duration: Duration::ZERO,
        };
        let mut n = 0;
        let r = run(&b, || {
            n += 1;
            if n == 2 {
                Err("device lost")
            } else {
                Ok(1.0)
            }
        });
        assert_eq!(r, Err("device lost"));
    }
}
