//! Sending the report to the collector: retries with exponential back-off inside a bounded
//! total time. Delivery is best effort by design: the pod's exit code is the verdict's, a
//! network failure is reported, not fatal.

use std::time::{Duration, Instant};

/// How to post.
#[derive(Debug, Clone)]
pub struct PostOptions {
    pub url: String,
    /// Bearer token (`Authorization: Bearer …`).
    pub token: Option<String>,
    /// Give up once this much time has gone by.
    pub total: Duration,
    /// First wait between attempts; doubles each time up to `max_delay`.
    pub first_delay: Duration,
    pub max_delay: Duration,
}

impl PostOptions {
    pub fn new(url: String, token: Option<String>, total: Duration) -> Self {
        PostOptions {
            url,
            token,
            total,
            first_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(8),
        }
    }
}

/// What happened.
#[derive(Debug, Clone, PartialEq)]
pub enum PostOutcome {
    /// The collector answered 2xx.
    Delivered { status: u16, attempts: u32 },
    /// Gave up: a refusal that retrying cannot fix (4xx), or time ran out.
    Failed { attempts: u32, reason: String },
}

impl std::fmt::Display for PostOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PostOutcome::Delivered { status, attempts } => {
                write!(f, "delivered (HTTP {status}) after {attempts} attempt(s)")
            }
            PostOutcome::Failed { attempts, reason } => {
                write!(
                    f,
                    "not delivered after {attempts} attempt(s): {reason}; the verdict stands"
                )
            }
        }
    }
}

/// Whether an HTTP status is worth another try.
fn retryable(status: u16) -> bool {
    status == 408 || status == 429 || status >= 500
}

/// Post `body` (JSON) to the collector.
pub fn post(body: &str, opts: &PostOptions) -> PostOutcome {
    let started = Instant::now();
    // One agent for every attempt: its connection pool and TLS setup are reused.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut delay = opts.first_delay;
    let mut attempts = 0;
    loop {
        attempts += 1;
        let left = opts.total.saturating_sub(started.elapsed());
        let reason = match attempt(&agent, body, opts, left.min(Duration::from_secs(30))) {
            Ok(status) if (200..300).contains(&status) => {
                return PostOutcome::Delivered { status, attempts }
            }
            Ok(status) if !retryable(status) => {
                return PostOutcome::Failed {
                    attempts,
                    reason: format!("the collector refused the report with HTTP {status}"),
                }
            }
            Ok(status) => format!("HTTP {status}"),
            Err(e) => e,
        };
        // Jitter of up to a quarter of the delay, so a fleet does not retry in step.
        let jitter = delay.mul_f64(f64::from(started.elapsed().subsec_nanos() % 1000) / 4000.0);
        let wait = delay + jitter;
        if started.elapsed() + wait >= opts.total {
            return PostOutcome::Failed {
                attempts,
                reason: format!(
                    "{reason} (gave up after {:.1} s)",
                    started.elapsed().as_secs_f64()
                ),
            };
        }
        std::thread::sleep(wait);
        delay = (delay * 2).min(opts.max_delay);
    }
}

/// One request; `Ok(status)` for any HTTP answer, `Err` for transport failures.
fn attempt(
    agent: &ureq::Agent,
    body: &str,
    opts: &PostOptions,
    timeout: Duration,
) -> Result<u16, String> {
    let mut req = agent
        .post(&opts.url)
        .config()
        .timeout_global(Some(timeout.max(Duration::from_millis(100))))
        .build()
        .header("Content-Type", "application/json");
    if let Some(t) = &opts.token {
        req = req.header("Authorization", &format!("Bearer {t}"));
    }
    match req.send(body) {
        Ok(resp) => Ok(resp.status().as_u16()),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_worth_retrying() {
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(retryable(s), "{s}");
        }
        for s in [400, 401, 403, 404, 413] {
            assert!(!retryable(s), "{s}");
        }
    }

    #[test]
    fn an_unreachable_collector_fails_within_the_total_time() {
        // Port 9 on loopback (discard) is closed on test machines: connection refused.
        let opts = PostOptions {
            first_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(80),
            ..PostOptions::new(
                "http://127.0.0.1:9/v1/reports".into(),
                None,
                Duration::from_millis(600),
            )
        };
        let t = Instant::now();
        let out = post("{}", &opts);
        assert!(t.elapsed() < Duration::from_secs(3));
        match out {
            PostOutcome::Failed { attempts, reason } => {
                assert!(attempts >= 2, "{attempts}");
                assert!(reason.contains("gave up"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }
}
