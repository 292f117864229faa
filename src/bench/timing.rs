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

/// Samples taken in rounds, and the size of each round.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rounds {
    pub samples: Vec<f64>,
    pub sizes: Vec<u32>,
}

/// [`run`] in `rounds` consecutive rounds over one `state`: the budget's duration and minimum
/// (and maximum) iterations are shared out between the rounds. Before every round (after
/// `renew` has replaced what a later round works on: fresh buffers, so that a run samples
/// more than one placement in memory) untimed iterations run for at least `settle` and at
/// least once (before the first round at least the budget's warm-up count), at most 100.
/// Why: two runs of the same build differ by more than one run's iterations vary, and only a
/// run with several rounds shows that spread to `compare`.
pub fn run_rounds<S, E>(
    budget: &Budget,
    rounds: u32,
    settle: Duration,
    state: &mut S,
    mut renew: impl FnMut(&mut S),
    mut iteration: impl FnMut(&mut S) -> Result<f64, E>,
) -> Result<Rounds, E> {
    let rounds = rounds.max(1);
    let share = |total: u32| total.div_ceil(rounds).max(1);
    let mut out = Rounds::default();
    for r in 0..rounds {
        if r > 0 {
            renew(state);
        }
        let started = Instant::now();
        let least = if r == 0 { budget.warmup.max(1) } else { 1 };
        let mut n = 0;
        while n < least || (started.elapsed() < settle && n < 100) {
            iteration(state)?;
            n += 1;
        }
        let per_round = Budget {
            warmup: 0,
            min_iterations: share(budget.min_iterations),
            max_iterations: share(budget.max_iterations),
            duration: budget.duration / rounds,
        };
        let samples = run(&per_round, || iteration(state))?;
        out.sizes.push(samples.len() as u32);
        out.samples.extend(samples);
    }
    Ok(out)
}

/// Rounds per accelerator benchmark (CUDA, Neuron): consecutive slices of the time budget on
/// the same buffers (a device allocation per round would time the allocator), so that
/// `compare` sees how the result moves during a run (clocks, other work on the device).
pub const DEVICE_ROUNDS: u32 = 8;

/// [`run_rounds`] with nothing to renew and no settle time: the budget cut into `rounds`
/// consecutive rounds, one untimed iteration before each after the first.
pub fn consecutive_rounds<E>(
    budget: &Budget,
    rounds: u32,
    mut iteration: impl FnMut() -> Result<f64, E>,
) -> Result<Rounds, E> {
    run_rounds(
        budget,
        rounds,
        Duration::ZERO,
        &mut (),
        |_| {},
        |_| iteration(),
    )
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
    fn rounds_share_the_budget_and_renew_between() {
        let b = Budget {
            warmup: 3,
            min_iterations: 10,
            max_iterations: 20,
            duration: Duration::ZERO,
        };
        // State: (renewals, calls).
        let mut state = (0u32, 0u32);
        let r = run_rounds::<_, ()>(
            &b,
            4,
            Duration::ZERO,
            &mut state,
            |s| s.0 += 1,
            |s| {
                s.1 += 1;
                Ok(f64::from(s.0))
            },
        )
        .unwrap();
        // Minimum 10 over 4 rounds: 3 each; the samples of round r carry the renewal count r.
        assert_eq!(r.sizes, vec![3, 3, 3, 3]);
        assert_eq!(r.samples[..3], [0.0; 3]);
        assert_eq!(r.samples[9..], [3.0; 3]);
        assert_eq!(state.0, 3, "renewed before every round but the first");
        // No settle time: the 3 warm-up iterations before the first round, one before each
        // later one, and the 12 timed ones.
        assert_eq!(state.1, 3 + 3 + 12);
        // A settle time longer than the iterations take: the cap of 100 per round.
        let mut calls = 0u32;
        let r = run_rounds::<_, ()>(
            &b,
            2,
            Duration::from_secs(60),
            &mut calls,
            |_| {},
            |c| {
                *c += 1;
                Ok(1.0)
            },
        )
        .unwrap();
        assert_eq!(r.sizes, vec![5, 5]);
        assert_eq!(calls, 2 * 100 + 10);
        // One round is plain `run`.
        let one = run_rounds::<_, ()>(&b, 1, Duration::ZERO, &mut (), |_| {}, |_| Ok(1.0)).unwrap();
        assert_eq!(one.sizes, vec![10]);
        // An error ends the run.
        let mut n = 0;
        let e = run_rounds(
            &b,
            2,
            Duration::ZERO,
            &mut n,
            |_| {},
            |n| {
                *n += 1;
                if *n > 5 {
                    Err("boom")
                } else {
                    Ok(1.0)
                }
            },
        );
        assert_eq!(e, Err("boom"));
    }

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
