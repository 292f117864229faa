//! Micro-kernels: GEMM at f32/tf32/f16/bf16, memory copy, host↔device copies and one
//! transformer block, each timed after warm-up and checked against a higher-precision
//! reference. Backends measure and return [`Benchmark`]s; nothing here prints.

pub mod block;
pub mod check;
pub mod cpu;
pub mod cuda;
pub mod data;
pub mod inference;
pub mod neff;
pub mod neuron;
pub mod stats;
pub mod timing;

use std::time::Duration;

use crate::report::{Benchmark, Correctness, Dtype, Kernel, ProblemSize, Report, Throughput};
use inference::BlockShape;
use timing::Budget;

/// Which devices to run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceSel {
    /// Every CUDA GPU if there is one, else every visible NeuronCore if there is one, else
    /// the CPU.
    Auto,
    Cpu,
    Cuda(u32),
    /// Logical NeuronCore N of the Neuron runtime.
    Neuron(u32),
    /// Every CUDA GPU, every visible NeuronCore and the CPU.
    All,
}

impl DeviceSel {
    pub fn parse(text: &str) -> Result<DeviceSel, String> {
        match text.trim() {
            "auto" => Ok(DeviceSel::Auto),
            "cpu" => Ok(DeviceSel::Cpu),
            "all" => Ok(DeviceSel::All),
            other => {
                let numbered = |prefix: &str| other.strip_prefix(prefix).map(str::parse::<u32>);
                match (numbered("cuda:"), numbered("neuron:")) {
                    (Some(Ok(n)), _) => Ok(DeviceSel::Cuda(n)),
                    (_, Some(Ok(n))) => Ok(DeviceSel::Neuron(n)),
                    _ => Err(format!(
                        "unknown device '{other}'; use auto, cpu, cuda:N, neuron:N or all"
                    )),
                }
            }
        }
    }
}

/// How much work and time a run spends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    Quick,
    Standard,
    Thorough,
}

impl Profile {
    pub fn parse(text: &str) -> Result<Profile, String> {
        match text.trim() {
            "quick" => Ok(Profile::Quick),
            "standard" => Ok(Profile::Standard),
            "thorough" => Ok(Profile::Thorough),
            other => Err(format!(
                "unknown profile '{other}'; use quick, standard or thorough"
            )),
        }
    }
}

/// Sizes and budgets of one profile on one kind of device.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plan {
    pub gemm: usize,
    pub copy_bytes: usize,
    pub transfer_bytes: usize,
    pub block: BlockShape,
    pub budget: Budget,
}

const MIB: usize = 1 << 20;

impl Plan {
    /// The CPU plan: `quick` stays under 5 s for every kernel and dtype on two cores.
    #[rustfmt::skip]
    pub fn cpu(profile: Profile) -> Plan {
        match profile {
            Profile::Quick => Plan::row(1024, 64 * MIB, 0, (128, 512, 8, 2048), 0.25, 1, 3),
            Profile::Standard => Plan::row(2048, 256 * MIB, 0, (256, 1024, 16, 4096), 1.0, 2, 5),
            Profile::Thorough => Plan::row(4096, 1024 * MIB, 0, (512, 2048, 16, 8192), 3.0, 3, 10),
        }
    }

    /// The GPU plan: `quick` stays under 15 s on one data-centre GPU.
    #[rustfmt::skip]
    pub fn gpu(profile: Profile) -> Plan {
        match profile {
            Profile::Quick => Plan::row(4096, 1024 * MIB, 256 * MIB, (512, 2048, 16, 8192), 0.3, 3, 10),
            Profile::Standard => Plan::row(8192, 2048 * MIB, 1024 * MIB, (1024, 4096, 32, 16384), 1.0, 5, 20),
            Profile::Thorough => Plan::row(8192, 4096 * MIB, 2048 * MIB, (2048, 4096, 32, 16384), 3.0, 10, 50),
        }
    }

    /// The Neuron plan: host-device transfers only (64 MiB in `quick`), with the GPU's
    /// budgets.
    pub fn neuron(profile: Profile) -> Plan {
        let transfer_bytes = match profile {
            Profile::Quick => 64 * MIB,
            Profile::Standard => 256 * MIB,
            Profile::Thorough => 1024 * MIB,
        };
        Plan {
            transfer_bytes,
            ..Plan::gpu(profile)
        }
    }

    /// One row of a plan table: sizes, block shape (tokens, hidden, heads, ffn), timed seconds
    /// per benchmark, warm-up and minimum iterations.
    fn row(
        gemm: usize,
        copy_bytes: usize,
        transfer_bytes: usize,
        block: (usize, usize, usize, usize),
        secs: f64,
        warmup: u32,
        min: u32,
    ) -> Plan {
        Plan {
            gemm,
            copy_bytes,
            transfer_bytes,
            block: BlockShape {
                tokens: block.0,
                hidden: block.1,
                heads: block.2,
                ffn: block.3,
            },
            budget: Budget {
                warmup,
                min_iterations: min,
                max_iterations: 100_000,
                duration: Duration::from_secs_f64(secs),
            },
        }
    }

    /// Host memory the CPU backend needs at most for one benchmark of `kernel`, in bytes.
    pub fn cpu_bytes(&self, kernel: Kernel) -> u128 {
        let f = 4u128;
        match kernel {
            // A, B, C plus widened copies of A and B, plus half-precision copies.
            Kernel::Gemm => 7 * (self.gemm as u128).pow(2) * f,
            Kernel::Copy => 2 * self.copy_bytes as u128,
            Kernel::Inference => {
                let (t, d, ff) = (
                    self.block.tokens as u128,
                    self.block.hidden as u128,
                    self.block.ffn as u128,
                );
                // Weights twice (the block and the host program), activations, f64 reference.
                2 * (4 * d * d + 2 * d * ff) * f + t * (10 * d + ff + t) * f * 3
            }
            Kernel::H2d | Kernel::D2h | Kernel::Neff => 0,
        }
    }

    /// Host memory one GPU's benchmark of `kernel` needs at most (inputs, results read back,
    /// pinned buffers, the f64 reference), in bytes.
    pub fn gpu_host_bytes(&self, kernel: Kernel) -> u128 {
        match kernel {
            Kernel::Gemm => 5 * (self.gemm as u128).pow(2) * 4,
            Kernel::Copy => 2 * self.copy_bytes as u128,
            Kernel::H2d | Kernel::D2h => 3 * self.transfer_bytes as u128,
            Kernel::Inference => self.cpu_bytes(Kernel::Inference),
            Kernel::Neff => 0,
        }
    }

    /// Apply `--size` and `--duration`: GEMM m = n = k = N, copies N MiB, N tokens.
    pub fn with_overrides(mut self, size: Option<usize>, duration: Option<Duration>) -> Plan {
        if let Some(n) = size {
            self.gemm = n;
            self.copy_bytes = n * MIB;
            self.transfer_bytes = n * MIB;
            self.block.tokens = n;
        }
        if let Some(d) = duration {
            self.budget.duration = d;
        }
        self
    }
}

/// Everything `bench` was asked to do.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub device: DeviceSel,
    pub kernels: Vec<Kernel>,
    pub dtypes: Vec<Dtype>,
    pub size: Option<usize>,
    pub duration: Option<Duration>,
    pub profile: Profile,
    pub seed: u64,
    pub injection: Injection,
    /// The probe's deadline for hardware calls (`--timeout`); the Neuron backend gives each
    /// libnrt call this plus the time its data needs.
    pub call_timeout: Duration,
    /// A compiled model to run on the NeuronCores (`--neff`).
    pub neff: Option<std::sync::Arc<neff::NeffModel>>,
}

/// Deliberate damage to a result after it was computed and before it is checked, so tests
/// (and sceptical operators) can see the checker reject it. Set with
/// `ACCELPROBE_INJECT_CORRUPTION=<kernel>[,<kernel>...]`.
///
/// Also a deliberate, measured slowdown for judging `accelprobe compare` (test use only):
/// `ACCELPROBE_INJECT_SLOWDOWN=<kernel>:<percent>[,...]` (CPU `copy` and f32 `gemm`) makes
/// each timed iteration busy-wait, inside the timed region, for that percentage of the time
/// the kernel itself just took, so throughput drops by about `percent / (100 + percent)`.
#[derive(Debug, Clone, Default)]
pub struct Injection {
    pub corrupt: Vec<Kernel>,
    /// Kernel and extra time in percent of the kernel's own time.
    pub slowdown: Vec<(Kernel, f64)>,
}

impl Injection {
    /// The kernels [`Injection::stall`] is called in (CPU backend; GEMM at f32 only).
    const SLOWABLE: [Kernel; 2] = [Kernel::Copy, Kernel::Gemm];

    /// Parse the environment variable's value.
    pub fn parse(text: &str) -> Result<Injection, String> {
        let mut corrupt = Vec::new();
        for name in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let k = Kernel::ALL
                .into_iter()
                .find(|k| k.as_str() == name)
                .ok_or_else(|| {
                    format!("unknown kernel '{name}' in ACCELPROBE_INJECT_CORRUPTION")
                })?;
            corrupt.push(k);
        }
        Ok(Injection {
            corrupt,
            slowdown: Vec::new(),
        })
    }

    /// Parse `ACCELPROBE_INJECT_SLOWDOWN` (`copy:10,gemm:5`: kernel and percent) into `self`.
    pub fn with_slowdown(mut self, text: &str) -> Result<Injection, String> {
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (name, pct) = item.split_once(':').ok_or_else(|| {
                format!("ACCELPROBE_INJECT_SLOWDOWN item '{item}' is not KERNEL:PERCENT")
            })?;
            let k = Self::SLOWABLE
                .into_iter()
                .find(|k| k.as_str() == name.trim())
                .ok_or_else(|| {
                    format!(
                        "ACCELPROBE_INJECT_SLOWDOWN cannot slow kernel '{}': only the CPU \
                         backend's copy and gemm (f32) can be slowed",
                        name.trim()
                    )
                })?;
            let pct: f64 = pct
                .trim()
                .parse()
                .ok()
                .filter(|p: &f64| p.is_finite() && (0.0..=1000.0).contains(p))
                .ok_or_else(|| {
                    format!("ACCELPROBE_INJECT_SLOWDOWN percent '{pct}' must be 0 to 1000")
                })?;
            self.slowdown.push((k, pct));
        }
        Ok(self)
    }

    /// Inside a timed region that began at `started`, after the kernel's work: busy-wait
    /// until the region has lasted `1 + percent / 100` times what it had lasted so far, when
    /// `kernel` is to be slowed down. A no-op otherwise.
    pub fn stall(&self, kernel: Kernel, started: std::time::Instant) {
        if let Some(&(_, pct)) = self.slowdown.iter().find(|(k, _)| *k == kernel) {
            let until = started.elapsed().mul_f64(1.0 + pct / 100.0);
            while started.elapsed() < until {
                std::hint::spin_loop();
            }
        }
    }

    /// Damage one element in the middle of `out` if `kernel` is to be corrupted.
    pub fn corrupt_f32(&self, kernel: Kernel, out: &mut [f32]) {
        if self.corrupt.contains(&kernel) && !out.is_empty() {
            let i = out.len() / 2 + 1;
            let i = i.min(out.len() - 1);
            out[i] = out[i] * 1.5 + 1.0;
        }
    }

    /// Flip one bit of one word in the middle of `out` if `kernel` is to be corrupted.
    pub fn corrupt_bits<T: Copy + std::ops::BitXorAssign + From<u32>>(
        &self,
        kernel: Kernel,
        out: &mut [T],
    ) {
        if self.corrupt.contains(&kernel) && !out.is_empty() {
            let i = out.len() / 2;
            out[i] ^= T::from(1 << 17);
        }
    }
}

/// What a backend measured, before statistics and peaks are applied.
pub struct Measured {
    pub kernel: Kernel,
    pub dtype: Option<Dtype>,
    pub device: String,
    pub device_name: Option<String>,
    pub implementation: String,
    pub size: ProblemSize,
    pub warmup: u32,
    /// Sizes of the rounds `samples` came in, in order (see [`Benchmark::rounds`]); empty
    /// for one round.
    pub rounds: Vec<u32>,
    pub samples: Vec<f64>,
    /// Work per iteration in the unit's numerator (TFLOP, GB, tokens).
    pub work: f64,
    pub unit: &'static str,
    pub peak: Option<f64>,
    pub correctness: Correctness,
    pub notes: Vec<String>,
}

/// Summarise samples into a [`Benchmark`]. No samples or a zero time is a failed check:
/// a kernel that did no measurable work must never pass.
pub fn finish(m: Measured) -> Benchmark {
    let stats = stats::summarize(&m.samples);
    let mut correctness = m.correctness;
    let timed = stats.median_s.is_finite() && stats.median_s > 0.0 && m.work > 0.0;
    if !timed && correctness.passed {
        correctness.passed = false;
        correctness.failure = Some("no timed work: zero iterations, zero time or zero work".into());
    }
    let value = if timed { m.work / stats.median_s } else { 0.0 };
    // Rounds that do not add up to the samples (a round cut short by an error) say nothing.
    let rounds_fit = m.rounds.len() > 1
        && m.rounds.iter().map(|&r| r as usize).sum::<usize>() == m.samples.len();
    Benchmark {
        kernel: m.kernel,
        dtype: m.dtype,
        device: m.device,
        device_name: m.device_name,
        implementation: m.implementation,
        size: m.size,
        warmup_iterations: m.warmup,
        iterations: m.samples.len() as u32,
        rounds: if rounds_fit { m.rounds } else { Vec::new() },
        samples_s: m.samples,
        stats,
        throughput: Throughput {
            value,
            unit: m.unit.to_string(),
        },
        peak: m.peak,
        fraction_of_peak: m.peak.filter(|p| *p > 0.0 && timed).map(|p| value / p),
        correctness,
        notes: m.notes,
        threads: None,
    }
}

/// Why `bench` could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{0}")]
    Unavailable(String),
}

/// Result of a run: the benchmarks and what the operator should know about the choices made.
#[derive(Debug, Default)]
pub struct BenchOutcome {
    pub benchmarks: Vec<Benchmark>,
    pub notes: Vec<String>,
}

/// Told about progress; the CLI shows a bar on a terminal.
pub trait Progress: Sync {
    /// `total` more items are planned.
    fn start(&self, _total: usize) {}
    /// An item begins.
    fn item(&self, _label: &str) {}
    /// The item ended.
    fn advance(&self) {}
    /// No more items.
    fn finish(&self) {}
}

/// No progress display.
pub struct Quiet;
impl Progress for Quiet {}

/// One unit of work of the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Item {
    kernel: Kernel,
    dtype: Option<Dtype>,
}

fn items(opts: &BenchOptions, host_only: bool, notes: &mut Vec<String>) -> Vec<Item> {
    let mut out = Vec::new();
    for &kernel in &opts.kernels {
        if host_only && matches!(kernel, Kernel::H2d | Kernel::D2h) {
            notes.push(format!(
                "{} skipped on the CPU: it measures host-device transfers",
                kernel.as_str()
            ));
            continue;
        }
        if kernel.has_dtype() {
            out.extend(opts.dtypes.iter().map(|&d| Item {
                kernel,
                dtype: Some(d),
            }));
        } else {
            out.push(Item {
                kernel,
                dtype: None,
            });
        }
    }
    out
}

/// The CUDA ordinals and names the report knows.
fn cuda_devices(report: &Report) -> Vec<(usize, Option<String>)> {
    let count = report
        .runtime(crate::report::RuntimeKind::Cuda)
        .filter(|r| r.status == crate::report::RuntimeStatus::Loaded)
        .and_then(|r| r.device_count)
        .unwrap_or(0) as usize;
    (0..count)
        .map(|ordinal| {
            let name = report
                .devices
                .iter()
                .filter_map(|d| d.cuda.as_ref())
                .find(|c| c.ordinal as usize == ordinal)
                .and_then(|c| c.name.clone());
            (ordinal, name)
        })
        .collect()
}

/// Run the benchmarks `opts` asks for, on the devices of `report`.
pub fn run(
    opts: &BenchOptions,
    report: &Report,
    progress: &dyn Progress,
) -> Result<BenchOutcome, BenchError> {
    let mut outcome = BenchOutcome::default();
    let gpus = cuda_devices(report);
    let neuron = neuron::cores(report);
    // NeuronCores to run on, as (cores, logical ids).
    let mut neuron_run: Option<(neuron::Cores, Vec<u32>)> = None;
    let all_cores = |c: &neuron::Cores| (c.clone(), (0..c.count).collect::<Vec<u32>>());
    let (run_cpu, gpus): (bool, Vec<(usize, Option<String>)>) = match opts.device {
        DeviceSel::Cpu => (true, Vec::new()),
        DeviceSel::All => {
            match &neuron {
                Ok(c) => neuron_run = Some(all_cores(c)),
                Err(Some(why)) => outcome.notes.push(format!("Neuron not benchmarked: {why}")),
                Err(None) => {}
            }
            (true, gpus)
        }
        DeviceSel::Auto if gpus.is_empty() => match &neuron {
            Ok(c) => {
                neuron_run = Some(all_cores(c));
                (false, Vec::new())
            }
            Err(why) => {
                outcome
                    .notes
                    .push("no CUDA device found; --device auto fell back to the CPU".to_string());
                if let Some(why) = why {
                    outcome.notes.push(format!("Neuron not benchmarked: {why}"));
                }
                (true, Vec::new())
            }
        },
        DeviceSel::Auto => (false, gpus),
        DeviceSel::Neuron(n) => {
            let c = match &neuron {
                Ok(c) => c,
                Err(why) => {
                    return Err(BenchError::Unavailable(format!(
                        "--device neuron:{n}: no NeuronCore is available ({}); use --device cpu or auto",
                        why.as_deref()
                            .unwrap_or("no Neuron runtime or device found; see `accelprobe report`")
                    )))
                }
            };
            if n >= c.count {
                return Err(BenchError::Unavailable(format!(
                    "--device neuron:{n}: the Neuron runtime sees {} NeuronCore(s), neuron:0 to neuron:{}",
                    c.count,
                    c.count - 1
                )));
            }
            if opts.neff.is_none()
                && !opts
                    .kernels
                    .iter()
                    .any(|k| matches!(k, Kernel::H2d | Kernel::D2h))
            {
                return Err(BenchError::Unavailable(format!(
                    "--device neuron:{n} runs only the h2d and d2h kernels (and a model given \
                     with --neff); add them to --kernel"
                )));
            }
            neuron_run = Some((c.clone(), vec![n]));
            (false, Vec::new())
        }
        DeviceSel::Cuda(n) => {
            let n = n as usize;
            if gpus.is_empty() {
                return Err(BenchError::Unavailable(format!(
                    "--device cuda:{n}: no CUDA device is available (see `accelprobe report`); use --device cpu or auto"
                )));
            }
            if n >= gpus.len() {
                return Err(BenchError::Unavailable(format!(
                    "--device cuda:{n}: this node has {} CUDA device(s), cuda:0 to cuda:{}",
                    gpus.len(),
                    gpus.len() - 1
                )));
            }
            (false, vec![gpus[n].clone()])
        }
    };
    if let (Some(model), None) = (&opts.neff, &neuron_run) {
        let why = match (&opts.device, &neuron) {
            (DeviceSel::Cpu, _) => "--device cpu".to_string(),
            (DeviceSel::Cuda(n), _) => format!("--device cuda:{n}"),
            (_, Err(Some(why))) => why.clone(),
            (_, Err(None)) => "no Neuron runtime or device found; see `accelprobe report`".into(),
            (_, Ok(_)) => "--device auto chose the CUDA GPUs".into(),
        };
        return Err(BenchError::Unavailable(format!(
            "--neff {} runs on NeuronCores and none was selected ({why}); use --device \
             neuron:N or all on a Neuron node",
            model.path.display()
        )));
    }
    if !gpus.is_empty() {
        let plan = Plan::gpu(opts.profile).with_overrides(opts.size, opts.duration);
        // Every GPU's host-side buffers and references exist at once.
        check_host_memory(&opts.kernels, |k| {
            plan.gpu_host_bytes(k) * gpus.len() as u128
        })?;
        run_gpus(opts, &plan, &gpus, progress, &mut outcome);
    }
    if let Some((cores, which)) = neuron_run {
        run_neuron(opts, &cores, &which, progress, &mut outcome)?;
    }
    if run_cpu {
        let plan = Plan::cpu(opts.profile).with_overrides(opts.size, opts.duration);
        check_host_memory(&opts.kernels, |k| plan.cpu_bytes(k))?;
        let work = items(opts, true, &mut outcome.notes);
        progress.start(work.len());
        let cpu = cpu::Cpu {
            name: report.host.cpu_model.clone(),
            seed: opts.seed,
            injection: &opts.injection,
        };
        for item in work {
            progress.item(&format!(
                "cpu {} {}",
                item.kernel.as_str(),
                item.dtype.map_or("", Dtype::as_str)
            ));
            let b = match (item.kernel, item.dtype) {
                (Kernel::Gemm, Some(d)) => {
                    Some(cpu.gemm(d, (plan.gemm, plan.gemm, plan.gemm), &plan.budget))
                }
                (Kernel::Copy, _) => Some(cpu.copy(plan.copy_bytes, &plan.budget)),
                (Kernel::Inference, Some(d)) => Some(cpu.inference(plan.block, d, &plan.budget)),
                _ => None,
            };
            let threads = u32::try_from(rayon::current_num_threads()).ok();
            outcome
                .benchmarks
                .extend(b.map(|b| Benchmark { threads, ..b }));
            progress.advance();
        }
        progress.finish();
    }
    Ok(outcome)
}

/// The Neuron cores `which`, one after the other, h2d and d2h only.
fn run_neuron(
    opts: &BenchOptions,
    cores: &neuron::Cores,
    which: &[u32],
    progress: &dyn Progress,
    outcome: &mut BenchOutcome,
) -> Result<(), BenchError> {
    let plan = Plan::neuron(opts.profile).with_overrides(opts.size, opts.duration);
    let (mut kernels, other): (Vec<Kernel>, Vec<Kernel>) = opts
        .kernels
        .iter()
        .partition(|k| matches!(k, Kernel::H2d | Kernel::D2h));
    if !other.is_empty() {
        outcome.notes.push(format!(
            "{} skipped on Neuron: the h2d and d2h copies run there, and a compiled model \
             given with --neff",
            other
                .iter()
                .map(|k| k.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if opts.neff.is_some() {
        kernels.push(Kernel::Neff);
    }
    if kernels.is_empty() {
        return Ok(());
    }
    // The source and the buffer read back, one benchmark at a time; a model's tensors are
    // read back twice.
    let model_bytes = opts.neff.as_ref().map_or(0, |m| m.host_bytes());
    check_host_memory(&kernels, |k| match k {
        Kernel::Neff => model_bytes,
        _ => 2 * plan.transfer_bytes as u128,
    })?;
    let job = neuron::Job {
        plan,
        seed: opts.seed,
        injection: opts.injection.clone(),
        call_timeout: opts.call_timeout,
        neff: opts.neff.clone(),
    };
    neuron::run(cores, which, &kernels, &job, progress, outcome);
    Ok(())
}

/// Refuse a plan that would not fit in the host's available memory (an allocation failure
/// aborts the process instead of reporting).
fn check_host_memory(kernels: &[Kernel], need: impl Fn(Kernel) -> u128) -> Result<(), BenchError> {
    let available = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            let line = m
                .lines()
                .find(|l| l.starts_with("MemAvailable:"))?
                .to_string();
            line.split_whitespace().nth(1)?.parse::<u128>().ok()
        })
        .map(|kib| kib * 1024);
    let Some(available) = available else {
        return Ok(());
    };
    for &k in kernels {
        let need = need(k);
        if need > available * 9 / 10 {
            return Err(BenchError::Unavailable(format!(
                "{} at this size needs about {:.1} GiB of memory and {:.1} GiB are available; use a smaller --size",
                k.as_str(),
                need as f64 / (1u128 << 30) as f64,
                available as f64 / (1u128 << 30) as f64
            )));
        }
    }
    Ok(())
}

/// A benchmark that could not run, as a failed entry (unknown is never a pass).
pub fn not_run(
    kernel: Kernel,
    dtype: Option<Dtype>,
    device: &str,
    device_name: Option<String>,
    reason: String,
) -> Benchmark {
    finish(Measured {
        kernel,
        dtype,
        device: device.to_string(),
        device_name,
        implementation: "none".into(),
        size: ProblemSize::default(),
        warmup: 0,
        rounds: Vec::new(),
        samples: Vec::new(),
        work: 0.0,
        unit: "",
        peak: None,
        correctness: Correctness::not_run(reason),
        notes: Vec::new(),
    })
}

/// How long the GPUs get: every item's timed budget three times over, warm-up and minimum
/// iterations at a pessimistic 5 TFLOP/s and 50 GB/s, plus setup and reference checks.
fn gpu_deadline(plan: &Plan, work: &[(Kernel, Option<Dtype>)]) -> Duration {
    let iters = f64::from(plan.budget.warmup + plan.budget.min_iterations + 1);
    let per_item = |k: Kernel| -> f64 {
        match k {
            Kernel::Gemm => 2.0 * 2.0 * (plan.gemm as f64).powi(3) / 5e12 * iters,
            Kernel::Copy => 2.0 * plan.copy_bytes as f64 / 50e9 * iters,
            Kernel::H2d | Kernel::D2h => plan.transfer_bytes as f64 / 5e9 * iters,
            Kernel::Inference => plan.block.flops() / 5e12 * iters,
            Kernel::Neff => 0.0,
        }
    };
    let estimate: f64 = work
        .iter()
        .map(|(k, _)| per_item(*k) + 3.0 * plan.budget.duration.as_secs_f64() + 10.0)
        .sum();
    Duration::from_secs_f64((estimate + 120.0).min(24.0 * 3600.0))
}

/// Every GPU at once, one worker thread each, under a deadline derived from the plan.
fn run_gpus(
    opts: &BenchOptions,
    plan: &Plan,
    gpus: &[(usize, Option<String>)],
    progress: &dyn Progress,
    outcome: &mut BenchOutcome,
) {
    let plan = *plan;
    let mut notes = Vec::new();
    let work: Vec<(Kernel, Option<Dtype>)> = items(opts, false, &mut notes)
        .into_iter()
        .map(|i| (i.kernel, i.dtype))
        .collect();
    outcome.notes.extend(notes);
    progress.start(gpus.len());
    let deadline = std::time::Instant::now() + gpu_deadline(&plan, &work);
    /// Benchmarks, skipped (kernel, dtype) pairs, notes.
    type Found = (Vec<Benchmark>, Vec<(Kernel, Option<Dtype>)>, Vec<String>);
    let slots: Vec<_> = gpus
        .iter()
        .map(|(ordinal, name)| {
            let (ordinal, name, work, seed, injection) = (
                *ordinal,
                name.clone(),
                work.clone(),
                opts.seed,
                opts.injection.clone(),
            );
            crate::probe::guard::spawn_worker(
                &format!("bench-gpu{ordinal}"),
                Found::default(),
                move |slot| {
                    let job = cuda::GpuJob {
                        seed,
                        injection: &injection,
                        budget: plan.budget,
                    };
                    let emit = |r: cuda::GpuOut| {
                        slot.update(|s: &mut Found| match r {
                            cuda::GpuOut::Bench(b) => s.0.push(*b),
                            cuda::GpuOut::Skipped(k, d, why) => {
                                s.1.push((k, d));
                                s.2.push(why);
                            }
                            cuda::GpuOut::Note(n) => s.2.push(n),
                        })
                    };
                    cuda::run_gpu(ordinal, name, &work, &plan, &job, &emit);
                },
            )
        })
        .collect();
    for ((ordinal, name), slot) in gpus.iter().zip(slots) {
        progress.item(&format!("cuda:{ordinal}"));
        let out = slot.wait_until(deadline);
        let (benches, skipped, notes) = out.value;
        let device = format!("cuda:{ordinal}");
        // Whatever was asked for and never came back failed: a hang at the deadline, or a
        // worker that died outside the guards.
        let reason = if out.stuck_in.is_some() {
            "the GPU did not finish its benchmarks before the deadline (hung kernel or driver)"
        } else {
            "the benchmark ended without a result"
        };
        let missing: Vec<(Kernel, Option<Dtype>)> = work
            .iter()
            .copied()
            .filter(|(k, d)| !benches.iter().any(|b| b.kernel == *k && b.dtype == *d))
            .filter(|item| !skipped.contains(item))
            .collect();
        outcome.benchmarks.extend(benches);
        outcome.notes.extend(notes);
        for (k, d) in missing {
            outcome
                .benchmarks
                .push(not_run(k, d, &device, name.clone(), reason.to_string()));
        }
        progress.advance();
    }
    progress.finish();
}
