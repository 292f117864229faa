//! Deadlines and panic guards around calls into vendor libraries.
//!
//! A GPU that fell off the bus can hang NVML forever, and cudarc panics when a library or
//! symbol is missing. Neither may stop the probe. Every backend therefore runs on its own
//! thread and publishes its progress into a [`Slot`]: the value built so far, the call in
//! flight and whether it finished. The caller waits on the slot until a deadline; a worker
//! still busy then is abandoned (the thread is left to the OS, which reaps it when the process
//! exits), and the call it was in is named in the report. [`guarded`] turns a panic inside a
//! call into an error string instead of an unwinding thread.

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Once};
use std::time::{Duration, Instant};

/// Prefix of the names of all probe threads; panics on them are caught, not printed.
pub const THREAD_PREFIX: &str = "accelprobe-probe";

/// Set once any worker has been abandoned at its deadline.
static ABANDONED: AtomicBool = AtomicBool::new(false);

/// Whether a probe thread was left running inside a vendor library. The process should then
/// end with `_exit` after flushing its output: running the libraries' exit handlers while one
/// of their threads is stuck inside them can deadlock.
pub fn workers_abandoned() -> bool {
    ABANDONED.load(Ordering::SeqCst)
}

/// The call a worker is in, for the "timed out in <call>" message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallSite {
    pub call: String,
    pub device: Option<u32>,
}

impl CallSite {
    /// The error of a call that did not return before the deadline.
    pub fn timeout_error(&self, runtime: crate::report::RuntimeKind) -> crate::report::ProbeError {
        crate::report::ProbeError {
            runtime,
            kind: crate::report::ErrorKind::Timeout,
            call: self.call.clone(),
            device: self.device,
            field: None,
            code: None,
            message: format!("{self} did not return before the deadline"),
        }
    }

    /// A whole runtime stuck here: its status becomes `timeout`, with the error recorded.
    pub fn time_out(
        &self,
        runtime: &mut crate::report::Runtime,
        errors: &mut Vec<crate::report::ProbeError>,
    ) {
        let e = self.timeout_error(runtime.name);
        runtime.status = crate::report::RuntimeStatus::Timeout;
        runtime.error = Some(e.message.clone());
        errors.push(e);
    }
}

impl std::fmt::Display for CallSite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.device {
            Some(d) => write!(f, "{} (device {d})", self.call),
            None => write!(f, "{}", self.call),
        }
    }
}

struct SlotState<T> {
    value: T,
    current: Option<CallSite>,
    /// When the current call was entered (or the slot made).
    since: Instant,
    /// Time the current call may take beyond the waiter's per-call limit.
    allowance: Duration,
    done: bool,
}

/// Shared progress of one worker thread.
pub struct Slot<T> {
    inner: Arc<(Mutex<SlotState<T>>, Condvar)>,
}

impl<T> Clone for Slot<T> {
    fn clone(&self) -> Self {
        Slot {
            inner: Arc::clone(&self.inner),
        }
    }
}

/// What a waiter gets back: the value as far as it got, and the call it was stuck in when the
/// deadline passed (`None` when the worker finished).
pub struct Outcome<T> {
    pub value: T,
    pub stuck_in: Option<CallSite>,
}

/// Lock a mutex, ignoring poisoning: a panicking worker leaves its last consistent value.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl<T: Clone> Slot<T> {
    pub fn new(value: T) -> Self {
        Slot {
            inner: Arc::new((
                Mutex::new(SlotState {
                    value,
                    current: None,
                    since: Instant::now(),
                    allowance: Duration::ZERO,
                    done: false,
                }),
                Condvar::new(),
            )),
        }
    }

    /// Change the published value.
    pub fn update<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        f(&mut lock(&self.inner.0).value)
    }

    /// Announce the call about to be made.
    pub fn enter(&self, call: &str, device: Option<u32>) {
        self.enter_allowing(call, device, Duration::ZERO);
    }

    /// Announce a call that may take `allowance` longer than the waiter's per-call limit
    /// (loading a compiled model, running one).
    pub fn enter_allowing(&self, call: &str, device: Option<u32>, allowance: Duration) {
        let mut s = lock(&self.inner.0);
        s.current = Some(CallSite {
            call: call.to_string(),
            device,
        });
        s.since = Instant::now();
        s.allowance = allowance;
    }

    /// The worker is finished; wake the waiter.
    pub fn finish(&self) {
        let mut s = lock(&self.inner.0);
        s.done = true;
        s.current = None;
        self.inner.1.notify_all();
    }

    /// Wait until the worker finishes or `deadline` passes.
    pub fn wait_until(&self, deadline: Instant) -> Outcome<T> {
        self.wait_until_or_stalled(deadline, None)
    }

    /// Wait until the worker finishes, `deadline` passes, or (with `per_call`) the call it
    /// entered last has been running longer than `per_call`: a worker that makes many calls
    /// gets a limit on each instead of one on all of them together.
    pub fn wait_until_or_stalled(
        &self,
        deadline: Instant,
        per_call: Option<Duration>,
    ) -> Outcome<T> {
        let (m, cv) = &*self.inner;
        let mut s = lock(m);
        while !s.done {
            let now = Instant::now();
            let limit = per_call
                .and_then(|p| s.since.checked_add(p.saturating_add(s.allowance)))
                .map_or(deadline, |l| l.min(deadline));
            if now >= limit {
                break;
            }
            s = match cv.wait_timeout(s, limit - now) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
        if !s.done {
            ABANDONED.store(true, Ordering::SeqCst);
        }
        Outcome {
            value: s.value.clone(),
            stuck_in: if s.done {
                None
            } else {
                Some(s.current.clone().unwrap_or(CallSite {
                    call: "startup".to_string(),
                    device: None,
                }))
            },
        }
    }
}

/// Run `work` on a named probe thread that publishes into a new slot, and return the slot.
/// The slot is marked finished when `work` returns or panics.
pub fn spawn_worker<T, F>(name: &str, initial: T, work: F) -> Slot<T>
where
    T: Clone + Send + 'static,
    F: FnOnce(&Slot<T>) + Send + 'static,
{
    install_quiet_panic_hook();
    let slot = Slot::new(initial);
    let worker_slot = slot.clone();
    let spawned = std::thread::Builder::new()
        .name(format!("{THREAD_PREFIX}-{name}"))
        .spawn(move || {
            let _ = panic::catch_unwind(AssertUnwindSafe(|| work(&worker_slot)));
            worker_slot.finish();
        });
    if spawned.is_err() {
        // No thread could be started; the waiter sees an unfinished slot stuck in "spawn".
        slot.enter("spawn thread", None);
    }
    slot
}

/// Run `f`, turning a panic into `Err(message)`.
pub fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    install_quiet_panic_hook();
    panic::catch_unwind(AssertUnwindSafe(f)).map_err(|payload| {
        if let Some(s) = payload.downcast_ref::<&str>() {
            (*s).to_string()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "panic without message".to_string()
        }
    })
}

/// Keep the default panic message off stderr for panics on probe threads (they are caught
/// and recorded in the report); every other thread keeps the default behaviour.
pub fn install_quiet_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let on_probe_thread = std::thread::current()
                .name()
                .is_some_and(|n| n.starts_with(THREAD_PREFIX));
            if !on_probe_thread {
                default(info);
            }
        }));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finished_worker_returns_value() {
        let slot = spawn_worker("t1", 0u32, |s| s.update(|v| *v = 7));
        let out = slot.wait_until(Instant::now() + Duration::from_secs(5));
        assert_eq!(out.value, 7);
        assert!(out.stuck_in.is_none());
    }

    #[test]
    fn hung_worker_is_named_and_partial_value_kept() {
        let slot = spawn_worker("t2", 0u32, |s| {
            s.update(|v| *v = 1);
            s.enter("nvmlDeviceGetName", Some(3));
            std::thread::sleep(Duration::from_secs(3));
        });
        let out = slot.wait_until(Instant::now() + Duration::from_millis(100));
        assert_eq!(out.value, 1);
        let stuck = out.stuck_in.expect("must be stuck");
        assert_eq!(stuck.to_string(), "nvmlDeviceGetName (device 3)");
    }

    #[test]
    fn a_stalled_call_is_abandoned_before_the_deadline() {
        let slot = spawn_worker("t4", 0u32, |s| {
            for i in 0..5 {
                s.enter("quick", Some(i));
                std::thread::sleep(Duration::from_millis(20));
                s.update(|v| *v += 1);
            }
            s.enter("nrt_tensor_write", Some(7));
            std::thread::sleep(Duration::from_secs(3));
        });
        let start = Instant::now();
        let out = slot.wait_until_or_stalled(
            start + Duration::from_secs(30),
            Some(Duration::from_millis(300)),
        );
        assert!(start.elapsed() < Duration::from_secs(2));
        assert_eq!(out.value, 5);
        assert_eq!(
            out.stuck_in.expect("stuck").to_string(),
            "nrt_tensor_write (device 7)"
        );
    }

    #[test]
    fn panicking_worker_finishes() {
        let slot = spawn_worker("t3", 0u32, |_| panic!("boom"));
        let out = slot.wait_until(Instant::now() + Duration::from_secs(5));
        assert!(out.stuck_in.is_none());
    }

    #[test]
    fn guarded_catches_panic_message() {
        assert_eq!(guarded(|| 5), Ok(5));
        let e = guarded(|| -> u32 { panic!("Missing symbol cuInit") }).unwrap_err();
        assert!(e.contains("cuInit"));
    }
}
