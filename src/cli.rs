//! Command-line definitions (clap derive) and the commands behind them.
//!
//! Commands return an [`Outcome`] (text for stdout, an optional note for stderr, the exit
//! code) or a typed [`Error`]; `main` prints and exits.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::bench::{self, BenchOptions, DeviceSel, Injection, Profile};
use crate::error::{Error, EXIT_FAIL, EXIT_OK};
use crate::probe::{self, ProbeOptions};
use crate::render::{self, query, Format};
use crate::report::{Dtype, Kernel};

/// Proves that a freshly provisioned GPU node is what was ordered.
#[derive(Debug, Parser)]
#[command(name = "accelprobe", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Inventory and health of every accelerator and runtime, like nvidia-smi.
    Report(ReportArgs),
    /// Run micro-kernels (GEMM, copies, a transformer block) with correctness checks.
    Bench(BenchArgs),
    /// The built-in accelerator and EC2 instance catalog.
    Catalog(CatalogArgs),
    /// Check a report against what the Pod, NodePool, node labels and catalog require.
    Verify(VerifyArgs),
    /// The validation-pod entrypoint: report, quick benchmarks and verdict, for Kubernetes.
    Run(RunArgs),
    /// The collector: receives, judges and stores reports; metrics, fleet page, node gating.
    Serve(ServeArgs),
    /// Print a NodePool and a validation Job for a catalog accelerator.
    Manifests(ManifestsArgs),
    /// Performance-regression verdict: benchmarks of one or more reports against a baseline.
    Compare(CompareArgs),
}

/// Where requirements come from; shared by `verify` and `run`. Each option has an
/// environment variable so a manifest can configure the pod without arguments (lists in
/// variables: paths separated by `,`, expectations by `;`).
#[derive(Debug, Args)]
pub struct RequirementArgs {
    /// Pod or workload manifest (Job, Deployment, DaemonSet, ...); repeatable, multi-document YAML.
    #[arg(
        long,
        value_name = "FILE",
        env = "ACCELPROBE_POD",
        value_delimiter = ','
    )]
    pub pod: Vec<PathBuf>,

    /// Karpenter NodePool manifest; repeatable, multi-document YAML.
    #[arg(
        long,
        value_name = "FILE",
        env = "ACCELPROBE_NODEPOOL",
        value_delimiter = ','
    )]
    pub nodepool: Vec<PathBuf>,

    /// The node's labels: a JSON/YAML object, or a Node as `kubectl get node -o json` prints it.
    #[arg(long, value_name = "FILE", env = "ACCELPROBE_NODE_LABELS")]
    pub node_labels: Option<PathBuf>,

    /// An explicit requirement, e.g. gpu=l40s, count=1, min-memory=45GiB, min-driver=535,
    /// min-cuda=12.2, min-tflops.bf16=100 (repeatable; highest precedence).
    #[arg(
        long,
        value_name = "KEY=VALUE",
        env = "ACCELPROBE_EXPECT",
        value_delimiter = ';'
    )]
    pub expect: Vec<String>,
}

impl RequirementArgs {
    /// Read and parse every input (bad input is an error, exit 2).
    fn inputs(&self) -> Result<crate::verify::VerifyInputs, Error> {
        use crate::verify::kubernetes;
        let mut inputs = crate::verify::VerifyInputs::default();
        for text in self.expect.iter().filter(|t| !t.trim().is_empty()) {
            let e = crate::verify::expect::parse(text).map_err(Error::Usage)?;
            inputs.expects.push((e, text.clone()));
        }
        for path in self.nodepool.iter().chain(&self.pod) {
            let m = kubernetes::read_manifests(path).map_err(|e| Error::Input(e.to_string()))?;
            inputs.manifests.extend(m);
        }
        if let Some(path) = &self.node_labels {
            inputs.node_labels =
                Some(kubernetes::read_node_labels(path).map_err(|e| Error::Input(e.to_string()))?);
        }
        Ok(inputs)
    }
}

/// Options of `accelprobe verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The report to judge (`-` for stdin); without it the local machine is probed now.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,

    #[command(flatten)]
    pub requirements: RequirementArgs,

    /// Output format: table or json (the verdict).
    #[arg(long, value_name = "FORMAT", default_value = "table")]
    pub format: String,

    #[command(flatten)]
    pub probe: ProbeArgs,
}

/// Options of `accelprobe run`, the validation-pod entrypoint.
#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub requirements: RequirementArgs,

    /// Benchmark profile: quick, standard or thorough.
    #[arg(long, value_name = "PROFILE", default_value = "quick", env = "ACCELPROBE_PROFILE", value_parser = Profile::parse)]
    pub profile: Profile,

    /// Skip the micro-kernels (identity, software and health only).
    /// The variable takes true/false, 1/0, yes/no or on/off.
    #[arg(long, env = "ACCELPROBE_NO_BENCH", value_parser = clap::builder::BoolishValueParser::new())]
    pub no_bench: bool,

    /// Where to write the verdict for Kubernetes (default /dev/termination-log when writable).
    #[arg(long, value_name = "FILE", env = "ACCELPROBE_TERMINATION_LOG")]
    pub termination_log: Option<PathBuf>,

    /// Also send the report (with its verdict) to a collector at this URL.
    #[arg(long, value_name = "URL", env = "ACCELPROBE_POST_URL")]
    pub post: Option<String>,

    /// File holding the bearer token for `--post`.
    #[arg(
        long,
        value_name = "FILE",
        env = "ACCELPROBE_TOKEN_FILE",
        requires = "post"
    )]
    pub token_file: Option<PathBuf>,

    /// Keep running: judge the node again every DURATION (`30m`, `6h`), for fleet mode in a
    /// DaemonSet. Each round prints its JSON line and posts its report; the process does not
    /// exit on a failing verdict.
    #[arg(long, value_name = "DURATION", env = "ACCELPROBE_EVERY", value_parser = parse_interval)]
    pub every: Option<Duration>,

    /// How long `--post` may keep retrying in total.
    #[arg(long, value_name = "DURATION", default_value = "60s", env = "ACCELPROBE_POST_TIMEOUT", value_parser = parse_duration)]
    pub post_timeout: Duration,

    #[command(flatten)]
    pub probe: ProbeArgs,
}

/// Largest report file accepted.
const MAX_REPORT_BYTES: u64 = 64 * 1024 * 1024;

/// Read a report from a file or stdin (`-`), with a clear error naming the file.
pub fn read_report(path: &std::path::Path) -> Result<crate::report::Report, Error> {
    let (name, text) = read_report_text(path)?;
    crate::report::Report::parse_json(&text).map_err(|e| Error::Input(format!("{name}: {e}")))
}

/// The text of a report (or baseline) file, `-` for stdin, refused past `MAX_REPORT_BYTES`:
/// (the name to show, the text).
fn read_report_text(path: &std::path::Path) -> Result<(String, String), Error> {
    use std::io::Read;
    let name = path.display().to_string();
    let mut text = String::new();
    let read = if name == "-" {
        std::io::stdin()
            .take(MAX_REPORT_BYTES + 1)
            .read_to_string(&mut text)
    } else {
        std::fs::File::open(path)
            .and_then(|f| f.take(MAX_REPORT_BYTES + 1).read_to_string(&mut text))
    };
    read.map_err(|e| Error::Input(format!("{name}: cannot read the report: {e}")))?;
    if text.len() as u64 > MAX_REPORT_BYTES {
        return Err(Error::Input(format!(
            "{name}: larger than {} MiB; this is not an accelprobe report",
            MAX_REPORT_BYTES >> 20
        )));
    }
    Ok((name, text))
}

/// `accelprobe verify`.
pub fn verify(args: &VerifyArgs) -> Result<Outcome, Error> {
    use crate::verify;
    let json = match args.format.as_str() {
        "table" => false,
        "json" => true,
        other => {
            return Err(Error::Usage(format!(
                "unknown --format '{other}' for verify; use table or json"
            )))
        }
    };
    let inputs = args.requirements.inputs()?;
    let report = match &args.report {
        Some(path) => read_report(path)?,
        None => probe::probe(&args.probe.options()),
    };
    let catalog = crate::verify::catalog::Catalog::builtin();
    let verdict =
        verify::verify(&report, &inputs, catalog).map_err(|e| Error::Usage(e.to_string()))?;
    let stdout = if json {
        render::verdict::json(&verdict)
    } else {
        render::verdict::table(&verdict)
    };
    let (note, exit_code) = if verdict.passed {
        (None, EXIT_OK)
    } else {
        // One id per failing check, once (per-device checks share an id).
        let mut failed: Vec<&str> = Vec::new();
        for c in verdict.failures() {
            if !failed.contains(&c.id.as_str()) {
                failed.push(c.id.as_str());
            }
        }
        let first = verdict
            .failures()
            .next()
            .map(|c| c.message.clone())
            .unwrap_or_default();
        (
            Some(format!("verdict FAIL: {} ({first})", failed.join(", "))),
            EXIT_FAIL,
        )
    };
    Ok(Outcome {
        stdout,
        note,
        exit_code,
    })
}

/// Options of `accelprobe catalog`.
#[derive(Debug, Args)]
pub struct CatalogArgs {
    /// Output format: table or json.
    #[arg(long, value_name = "FORMAT", default_value = "table")]
    pub format: String,
}

/// `accelprobe catalog`.
pub fn catalog(args: &CatalogArgs) -> Result<Outcome, Error> {
    let c = crate::verify::catalog::Catalog::builtin();
    let stdout = match args.format.as_str() {
        "table" => render::catalog::table(c),
        "json" => render::catalog::json(c),
        other => {
            return Err(Error::Usage(format!(
                "unknown --format '{other}' for catalog; use table or json"
            )))
        }
    };
    Ok(Outcome {
        stdout,
        note: None,
        exit_code: EXIT_OK,
    })
}

/// Options of `accelprobe report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Output format: table (default), json, or csv[,noheader][,nounits] (with --query-gpu).
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<String>,

    /// nvidia-smi query mode: comma-separated fields, e.g. name,memory.total (implies csv).
    #[arg(long = "query-gpu", value_name = "FIELDS")]
    pub query_gpu: Option<String>,

    /// Exit 1 when no accelerator is found (the report is still printed).
    #[arg(long)]
    pub require_accelerator: bool,

    #[command(flatten)]
    pub probe: ProbeArgs,
}

/// How hardware is reached; shared by every command that probes.
#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// Path of libnvidia-ml.so.1 to load instead of searching for it.
    #[arg(long, value_name = "PATH", env = "ACCELPROBE_NVML_LIB")]
    pub nvml_lib: Option<PathBuf>,

    /// Deadline for all hardware calls together, e.g. 10s, 500ms, 2m.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration, env = "ACCELPROBE_TIMEOUT")]
    pub timeout: Duration,

    /// Do not load the CUDA driver (NVML only).
    #[arg(long)]
    pub no_cuda: bool,

    /// Root of the filesystem holding the Neuron sysfs tree
    /// (`<PATH>/sys/devices/virtual/neuron_device`).
    #[arg(
        long,
        value_name = "PATH",
        default_value = "/",
        env = "ACCELPROBE_SYSFS_ROOT"
    )]
    pub sysfs_root: PathBuf,

    /// Path of the Neuron runtime libnrt.so.1 to load instead of searching for it.
    #[arg(long, value_name = "PATH", env = "ACCELPROBE_NRT_LIB")]
    pub neuron_lib: Option<PathBuf>,

    /// Do not look for AWS Neuron devices or the Neuron runtime.
    #[arg(long)]
    pub no_neuron: bool,
}

impl ProbeArgs {
    fn options(&self) -> ProbeOptions {
        ProbeOptions {
            nvml_lib: self.nvml_lib.clone(),
            timeout: self.timeout,
            skip_cuda: self.no_cuda,
            sysfs_root: self.sysfs_root.clone(),
            neuron_lib: self.neuron_lib.clone(),
            skip_neuron: self.no_neuron,
        }
    }
}

/// Options of `accelprobe bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Where to run: auto (GPUs if any, else NeuronCores if any, else the CPU), cpu, cuda:N,
    /// neuron:N, or all.
    #[arg(long, value_name = "DEVICE", default_value = "auto", value_parser = DeviceSel::parse)]
    pub device: DeviceSel,

    /// Kernels, comma separated: gemm, copy, h2d, d2h, inference.
    #[arg(long, value_name = "LIST", default_value = "gemm,copy,h2d,d2h,inference", value_parser = parse_kernels)]
    pub kernel: KernelList,

    /// Number formats for gemm and inference, comma separated: f32, tf32, f16, bf16.
    #[arg(long, value_name = "LIST", default_value = "f32,tf32,f16,bf16", value_parser = parse_dtypes)]
    pub dtype: DtypeList,

    /// Problem size: GEMM m = n = k = N; copies N MiB; inference N tokens.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub size: Option<u32>,

    /// Timed duration of each benchmark (after warm-up), e.g. 500ms, 2s.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub duration: Option<Duration>,

    /// Sizes and durations: quick (seconds), standard, thorough.
    #[arg(long, value_name = "PROFILE", default_value = "quick", value_parser = Profile::parse)]
    pub profile: Profile,

    /// Output format: table or json (the report with benchmarks[]).
    #[arg(long, value_name = "FORMAT", default_value = "table")]
    pub format: String,

    /// Seed of the random inputs.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub seed: u64,

    /// Also write a compact baseline of the results (for `accelprobe compare`) to FILE.
    #[arg(long, value_name = "FILE")]
    pub save_baseline: Option<PathBuf>,

    /// A compiled Neuron model (.neff from neuronx-cc) to load and execute on every selected
    /// NeuronCore: its latency and throughput become the `neff` benchmark.
    #[arg(long, value_name = "FILE", env = "ACCELPROBE_NEFF")]
    pub neff: Option<PathBuf>,

    /// The bytes of one input tensor of the --neff model, as NAME=FILE (repeat for each
    /// input; inputs not given are filled with zeros).
    #[arg(long = "neff-input", value_name = "NAME=FILE", requires = "neff", value_parser = bench::neff::parse_input)]
    pub neff_inputs: Vec<(String, PathBuf)>,

    #[command(flatten)]
    pub probe: ProbeArgs,
}

/// A parsed `--kernel` list.
#[derive(Debug, Clone)]
pub struct KernelList(pub Vec<Kernel>);

/// A parsed `--dtype` list.
#[derive(Debug, Clone)]
pub struct DtypeList(pub Vec<Dtype>);

fn parse_list<T: Copy + PartialEq>(
    text: &str,
    all: &[T],
    name: fn(T) -> &'static str,
    what: &str,
) -> Result<Vec<T>, String> {
    let mut out = Vec::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let v = all
            .iter()
            .copied()
            .find(|v| name(*v) == item)
            .ok_or_else(|| {
                let valid: Vec<&str> = all.iter().map(|v| name(*v)).collect();
                format!("unknown {what} '{item}'; use {}", valid.join(", "))
            })?;
        if !out.contains(&v) {
            out.push(v);
        }
    }
    if out.is_empty() {
        return Err(format!("no {what} given"));
    }
    Ok(out)
}

fn parse_kernels(text: &str) -> Result<KernelList, String> {
    parse_list(text, &Kernel::ALL, Kernel::as_str, "kernel").map(KernelList)
}

fn parse_dtypes(text: &str) -> Result<DtypeList, String> {
    parse_list(text, &Dtype::ALL, Dtype::as_str, "dtype").map(DtypeList)
}

/// What a command produced.
#[derive(Debug)]
pub struct Outcome {
    pub stdout: String,
    /// A one-line note for stderr (the reason behind a non-zero exit).
    pub note: Option<String>,
    pub exit_code: i32,
}

/// Options of `accelprobe manifests`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("accelerator").required(true).args(["gpu", "neuron"])))]
pub struct ManifestsArgs {
    /// A GPU by label name, catalog key or NVML name (`l40s`, `h100`, `NVIDIA A10G`).
    #[arg(long, value_name = "NAME")]
    pub gpu: Option<String>,

    /// An AWS Neuron accelerator (`inferentia2`, `trainium`, `trainium2`).
    #[arg(long, value_name = "NAME")]
    pub neuron: Option<String>,

    /// Accelerators per node: pins the NodePool to that size and makes the Job request all of
    /// them. Default: the smallest size's count, not pinned.
    #[arg(long, value_name = "N")]
    pub count: Option<u32>,

    /// The collector's report URL (`http://accelprobe-collector.accelprobe:8080/v1/reports`);
    /// the Job then posts its report with the token from the Secret accelprobe-token.
    #[arg(long, value_name = "URL")]
    pub collector: Option<String>,

    /// The accelprobe image the Job runs.
    #[arg(long, value_name = "IMAGE", default_value = concat!("accelprobe:", env!("CARGO_PKG_VERSION")))]
    pub image: String,
}

/// `accelprobe manifests`.
pub fn manifests(args: &ManifestsArgs) -> Result<Outcome, Error> {
    use crate::verify::catalog::Vendor;
    let (name, vendor) = match (&args.gpu, &args.neuron) {
        (Some(g), _) => (g.clone(), Vendor::Nvidia),
        (None, Some(n)) => (n.clone(), Vendor::Neuron),
        (None, None) => return Err(Error::Usage("give --gpu NAME or --neuron NAME".to_string())),
    };
    let req = crate::manifests::Request {
        name,
        vendor,
        count: args.count,
        collector: args.collector.clone(),
        image: args.image.clone(),
    };
    let plan = crate::manifests::plan(crate::verify::catalog::Catalog::builtin(), &req)
        .map_err(|e| Error::Usage(e.to_string()))?;
    Ok(Outcome {
        stdout: render::manifests::yaml(&plan),
        note: None,
        exit_code: EXIT_OK,
    })
}

/// Options of `accelprobe serve`, the collector.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on. A non-loopback address needs --token-file (or --insecure).
    #[arg(
        long,
        value_name = "HOST:PORT",
        default_value = "127.0.0.1:8080",
        env = "ACCELPROBE_LISTEN"
    )]
    pub listen: String,

    /// SQLite database file (created when missing; WAL mode, every commit synced).
    #[arg(
        long,
        value_name = "PATH",
        default_value = "accelprobe-collector.db",
        env = "ACCELPROBE_DB"
    )]
    pub db: PathBuf,

    /// Bearer tokens that may post reports, one per line.
    #[arg(long, value_name = "FILE", env = "ACCELPROBE_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,

    /// Directory of NodePool and Pod/workload manifests the collector judges nodes against.
    #[arg(long, value_name = "DIR", env = "ACCELPROBE_REQUIREMENTS")]
    pub requirements: Option<PathBuf>,

    /// Accept reports from the network without a token.
    #[arg(long)]
    pub insecure: bool,

    /// Gate nodes through the Kubernetes API (in-cluster config or KUBECONFIG): remove the
    /// startup taint from nodes that pass, label every node with its verdict.
    /// The variable takes true/false, 1/0, yes/no or on/off.
    #[arg(long, env = "ACCELPROBE_KUBE", value_parser = clap::builder::BoolishValueParser::new())]
    pub kube: bool,

    /// Largest report accepted (bytes; KiB and MiB suffixes allowed).
    #[arg(long, value_name = "SIZE", default_value = "8MiB", env = "ACCELPROBE_MAX_BODY", value_parser = parse_size)]
    pub max_body: usize,

    /// How long a connection may take to send a request's headers; a kept-alive connection
    /// waiting for its next request counts too. Then it is closed.
    #[arg(long, value_name = "DURATION", default_value = "10s", env = "ACCELPROBE_HEADER_TIMEOUT", value_parser = parse_duration)]
    pub header_timeout: Duration,
}

/// `accelprobe serve`: runs until SIGTERM or SIGINT.
pub fn serve(args: &ServeArgs) -> Result<Outcome, Error> {
    use crate::serve::{self, ServeError, ServeOptions};
    let opts = ServeOptions {
        listen: args.listen.clone(),
        db: args.db.clone(),
        token_file: args.token_file.clone(),
        requirements: args.requirements.clone(),
        insecure: args.insecure,
        kube: args.kube,
        max_body: args.max_body,
        header_timeout: args.header_timeout,
    };
    serve::serve(opts).map_err(|e| match e {
        ServeError::Config(m) => Error::Usage(m),
        ServeError::Start(m) => Error::Service(m),
    })?;
    Ok(Outcome {
        stdout: String::new(),
        note: None,
        exit_code: EXIT_OK,
    })
}

/// `6h`, `30m`, `45s` for a log line.
pub fn duration_text(d: Duration) -> String {
    let s = d.as_secs();
    if s.is_multiple_of(3600) {
        format!("{}h", s / 3600)
    } else if s.is_multiple_of(60) {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

/// Parse a size: `1048576`, `512KiB`, `8MiB`.
pub fn parse_size(text: &str) -> Result<usize, String> {
    let t = text.trim();
    let (digits, mult) = if let Some(d) = t.strip_suffix("MiB") {
        (d, 1usize << 20)
    } else if let Some(d) = t.strip_suffix("KiB") {
        (d, 1 << 10)
    } else {
        (t, 1)
    };
    digits
        .trim()
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("'{text}' is not a size; use bytes, or a number with KiB or MiB"))
}

/// Parse a duration: `10s`, `500ms`, `2m`, or plain seconds (`10`, `0.5`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    duration_within(text, 0.0, 3600.0, "more than 0 and at most 1 hour")
}

/// Parse the interval of `run --every`: `30m`, `6h`; from 1 minute to 7 days.
pub fn parse_interval(text: &str) -> Result<Duration, String> {
    duration_within(text, 60.0, 7.0 * 86400.0, "from 1m to 168h")
}

/// `500ms`, `10s`, `2m`, `6h` or plain seconds, in (`min`, `max`] seconds (`min` included
/// when it is not 0).
fn duration_within(text: &str, min: f64, max: f64, range: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (num, scale) = if let Some(n) = t.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = t.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (t, 1.0)
    };
    let value: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("'{text}' is not a duration; use e.g. 10s, 500ms, 2m or 6h"))?;
    let secs = value * scale;
    if !(secs.is_finite() && secs > 0.0 && secs >= min && secs <= max) {
        return Err(format!("'{text}' is out of range; use {range}"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// `accelprobe report`.
pub fn report(args: &ReportArgs) -> Result<Outcome, Error> {
    let format = match (&args.format, &args.query_gpu) {
        (Some(f), _) => Format::parse(f)?,
        (None, Some(_)) => Format::Csv {
            header: true,
            units: true,
        },
        (None, None) => Format::Table,
    };
    // Validate everything before touching hardware.
    let fields = match (&args.query_gpu, format) {
        (Some(q), Format::Csv { .. }) => Some(query::parse_fields(q)?),
        (Some(_), _) => {
            return Err(Error::Usage(
                "--query-gpu prints CSV; use --format csv[,noheader][,nounits]".into(),
            ))
        }
        (None, Format::Csv { .. }) => {
            return Err(Error::Usage(format!(
                "--format csv needs --query-gpu=FIELDS; valid fields: {}",
                query::valid_names()
            )))
        }
        (None, _) => None,
    };

    let report = probe::probe(&args.probe.options());

    let stdout = match (format, &fields) {
        (Format::Csv { header, units }, Some(f)) => query::csv(&report, f, header, units),
        (Format::Json, _) => render::json(&report),
        _ => render::table::render(&report),
    };
    let (note, exit_code) = if args.require_accelerator && report.devices.is_empty() {
        let summary = report
            .runtimes
            .iter()
            .map(|r| format!("{} {}", r.name.as_str(), r.status.as_str()))
            .collect::<Vec<_>>()
            .join(", ");
        let e = Error::NoAccelerator { summary };
        (Some(e.to_string()), EXIT_FAIL)
    } else {
        (None, EXIT_OK)
    };
    Ok(Outcome {
        stdout,
        note,
        exit_code,
    })
}

/// `accelprobe bench`.
pub fn bench(args: &BenchArgs, progress: &dyn bench::Progress) -> Result<Outcome, Error> {
    let json = match args.format.as_str() {
        "table" => false,
        "json" => true,
        other => {
            return Err(Error::Usage(format!(
                "unknown --format '{other}' for bench; use table or json"
            )))
        }
    };
    let injection = match std::env::var("ACCELPROBE_INJECT_CORRUPTION") {
        Ok(v) => Injection::parse(&v).map_err(Error::Usage)?,
        Err(_) => Injection::default(),
    };
    let injection = match std::env::var("ACCELPROBE_INJECT_SLOWDOWN") {
        Ok(v) => injection.with_slowdown(&v).map_err(Error::Usage)?,
        Err(_) => injection,
    };
    let neff = match &args.neff {
        Some(path) => Some(std::sync::Arc::new(
            bench::neff::NeffModel::open(path, &args.neff_inputs).map_err(Error::Input)?,
        )),
        None => None,
    };
    let opts = BenchOptions {
        device: args.device,
        kernels: args.kernel.0.clone(),
        dtypes: args.dtype.0.clone(),
        size: args.size.map(|n| n as usize),
        duration: args.duration,
        profile: args.profile,
        seed: args.seed,
        injection,
        call_timeout: args.probe.timeout,
        neff,
    };
    let mut report = probe::probe(&args.probe.options());
    let outcome = bench::run(&opts, &report, progress).map_err(|e| Error::Usage(e.to_string()))?;
    report.benchmarks = outcome.benchmarks;
    if let Some(path) = &args.save_baseline {
        let baseline = crate::compare::Baseline::from_report(&report, probe::now_rfc3339());
        std::fs::write(path, baseline.to_json()).map_err(|e| {
            Error::Input(format!(
                "cannot write baseline {}: {e}; check the directory exists and is writable",
                path.display()
            ))
        })?;
    }
    let stdout = if json {
        render::json(&report)
    } else {
        render::bench::table(&report, &outcome.notes)
    };
    let failed: Vec<&crate::report::Benchmark> = report
        .benchmarks
        .iter()
        .filter(|b| !b.correctness.passed)
        .collect();
    let (note, exit_code) = match failed.first() {
        None => (
            json.then(|| outcome.notes.join("; "))
                .filter(|n| !n.is_empty()),
            EXIT_OK,
        ),
        Some(first) => {
            let what: Vec<String> = failed
                .iter()
                .map(|b| {
                    let dtype = b
                        .dtype
                        .map(|d| format!(" {}", d.as_str()))
                        .unwrap_or_default();
                    format!("{}{dtype} on {}", b.kernel.as_str(), b.device)
                })
                .collect();
            let verb = if first.iterations == 0 {
                "could not run"
            } else {
                "wrong results from"
            };
            (
                Some(format!(
                    "{verb} {} ({} benchmark(s) failed; first: {})",
                    what.join(", "),
                    failed.len(),
                    first.correctness.failure.as_deref().unwrap_or("no detail")
                )),
                EXIT_FAIL,
            )
        }
    };
    Ok(Outcome {
        stdout,
        note,
        exit_code,
    })
}

/// `accelprobe run`: probe, benchmark, judge; one JSON line on stdout (the report with its
/// verdict), a summary on stderr, the verdict in the termination message; exit code of the
/// verdict.
pub fn run(args: &RunArgs, progress: &dyn bench::Progress) -> Result<Outcome, Error> {
    let inputs = args.requirements.inputs()?;
    // Check the delivery settings before spending time on the node.
    let post = match &args.post {
        None => None,
        Some(url) => {
            crate::feedback::check_url("--post", url).map_err(Error::Usage)?;
            let token = match &args.token_file {
                None => None,
                Some(path) => crate::feedback::read_tokens(path)
                    .map_err(Error::Input)?
                    .into_iter()
                    .next(),
            };
            Some(crate::feedback::post::PostOptions::new(
                url.clone(),
                token,
                args.post_timeout,
            ))
        }
    };
    let mut report = probe::probe(&args.probe.options());
    if let Some(labels) = &inputs.node_labels {
        // The collector finds the node's NodePool from these when it cannot ask the API.
        report.host.add_node_labels(
            labels.node_name.as_deref(),
            labels.iter().map(|l| (l.key.as_str(), l.value.as_str())),
        );
    }
    let mut notes = Vec::new();
    if !args.no_bench {
        let opts = BenchOptions {
            device: DeviceSel::Auto,
            kernels: Kernel::ALL.to_vec(),
            dtypes: Dtype::ALL.to_vec(),
            size: None,
            duration: None,
            profile: args.profile,
            seed: 1,
            injection: Injection::default(),
            call_timeout: args.probe.timeout,
            neff: None,
        };
        match bench::run(&opts, &report, progress) {
            Ok(outcome) => {
                report.benchmarks = outcome.benchmarks;
                notes = outcome.notes;
            }
            Err(e) => notes.push(format!("benchmarks not run: {e}")),
        }
    }
    let catalog = crate::verify::catalog::Catalog::builtin();
    let verdict = crate::verify::verify(&report, &inputs, catalog)
        .map_err(|e| Error::Usage(e.to_string()))?;

    let mut doc = serde_json::to_value(&report).unwrap_or_default();
    doc["verdict"] = serde_json::to_value(&verdict).unwrap_or_default();
    let mut stdout = serde_json::to_string(&doc).unwrap_or_default();
    stdout.push('\n');

    let message =
        crate::feedback::termination_message(&verdict, crate::feedback::TERMINATION_LIMIT);
    let target = args.termination_log.clone().or_else(|| {
        let default = std::path::PathBuf::from("/dev/termination-log");
        std::fs::OpenOptions::new()
            .append(true)
            .open(&default)
            .ok()
            .map(|_| default)
    });
    let mut summary = run_summary(&verdict, &report, &notes);
    if let Some(opts) = &post {
        let outcome = crate::feedback::post::post(stdout.trim_end(), opts);
        summary.push_str(&format!("\n  report to {}: {outcome}", opts.url));
    }
    if let Some(path) = target {
        if let Err(e) = std::fs::write(&path, &message) {
            summary.push_str(&format!(
                "\naccelprobe: cannot write the termination message to {}: {e}",
                path.display()
            ));
        }
    }
    Ok(Outcome {
        stdout,
        note: Some(summary),
        exit_code: if verdict.passed { EXIT_OK } else { EXIT_FAIL },
    })
}

/// A few lines for a person reading `kubectl logs`.
fn run_summary(
    v: &crate::verify::verdict::Verdict,
    report: &crate::report::Report,
    notes: &[String],
) -> String {
    let gpus: Vec<String> = report
        .devices
        .iter()
        .filter_map(|d| d.name.clone())
        .collect();
    let mut gpus_text = gpus
        .first()
        .cloned()
        .unwrap_or_else(|| "no accelerator".into());
    if gpus.len() > 1 {
        gpus_text = format!("{} x {gpus_text}", gpus.len());
    }
    let failed: Vec<String> = v
        .failures()
        .map(|c| format!("{}: {}", c.id, c.message))
        .collect();
    let mut s = format!(
        "verdict {} on {} ({gpus_text}): {} checks, {} failed, {} benchmarks",
        if v.passed { "PASS" } else { "FAIL" },
        v.node.as_deref().unwrap_or("this node"),
        v.checks.len(),
        failed.len(),
        report.benchmarks.len()
    );
    for f in failed.iter().take(10) {
        s.push_str(&format!("\n  fail {f}"));
    }
    if failed.len() > 10 {
        s.push_str(&format!("\n  ... {} more", failed.len() - 10));
    }
    for n in notes {
        s.push_str(&format!("\n  note: {n}"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("8MiB"), Ok(8 << 20));
        assert_eq!(parse_size("512KiB"), Ok(512 << 10));
        assert_eq!(parse_size("100"), Ok(100));
        assert!(parse_size("0").is_err());
        assert!(parse_size("1GB").is_err());
        assert!(parse_size("99999999999999999999MiB").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("0").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("NaN").is_err());
        assert!(parse_duration("2h").is_err());
        assert_eq!(parse_interval("6h"), Ok(Duration::from_secs(6 * 3600)));
        assert_eq!(parse_interval("30m"), Ok(Duration::from_secs(1800)));
        assert!(parse_interval("10s").is_err());
        assert!(parse_interval("200h").is_err());
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}

/// Options of `accelprobe compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The baseline: a report with benchmarks (`bench --format json`) or a baseline file
    /// (`bench --save-baseline`).
    #[arg(value_name = "BASE")]
    pub base: PathBuf,

    /// One or more current reports (or baseline files); several make a fleet comparison,
    /// per node and overall, with outlier nodes flagged.
    #[arg(value_name = "CUR", required = true)]
    pub current: Vec<PathBuf>,

    /// Smallest change that counts, in percent (`5%` or `5`).
    #[arg(long, value_name = "PERCENT", default_value = "5%", value_parser = parse_percent)]
    pub threshold: f64,

    /// Compare only metrics matching PATTERN (repeatable): `*` wildcards over
    /// `kernel/dtype/device model/size/implementation`, or a substring.
    #[arg(long = "metric", value_name = "PATTERN")]
    pub metrics: Vec<String>,

    /// Output format: table, json or markdown.
    #[arg(long, value_name = "FORMAT", default_value = "table")]
    pub format: String,

    /// Confidence level of the interval (0.5 to 0.9999).
    #[arg(long, value_name = "LEVEL", default_value_t = 0.95)]
    pub confidence: f64,

    /// Seed of the bootstrap resampling (same inputs and seed, same answer).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub seed: u64,

    /// Bootstrap resamples per metric.
    #[arg(long, value_name = "N", default_value_t = 2000, value_parser = clap::value_parser!(u32).range(100..=1_000_000))]
    pub resamples: u32,
}

/// `5%`, `5` or `2.5%` as a fraction (0.05, 0.025); between 0 and 100 percent, exclusive. A
/// bare number below 1 (`0.05`) is refused: it reads as a fraction (5 %) as often as a
/// percentage (0.05 %); below 1 % the sign must be written (`0.5%`).
fn parse_percent(text: &str) -> Result<f64, String> {
    let t = text.trim();
    let (t, sign) = match t.strip_suffix('%') {
        Some(t) => (t.trim(), true),
        None => (t, false),
    };
    match t.parse::<f64>() {
        Ok(v) if !sign && v > 0.0 && v < 1.0 => {
            let pct = format!("{:.6}", v * 100.0);
            let pct = pct.trim_end_matches('0').trim_end_matches('.');
            Err(format!(
                "threshold '{text}' is ambiguous: write {pct}% for {pct} percent, or {v}% for {v} percent"
            ))
        }
        Ok(v) if v.is_finite() && v > 0.0 && v < 100.0 => Ok(v / 100.0),
        _ => Err(format!(
            "invalid threshold '{text}'; give a percentage between 0 and 100, e.g. 5%"
        )),
    }
}

/// `accelprobe compare`.
pub fn compare(args: &CompareArgs) -> Result<Outcome, Error> {
    use crate::compare::{self, Run};
    let format = args.format.as_str();
    if !matches!(format, "table" | "json" | "markdown") {
        return Err(Error::Usage(format!(
            "unknown --format '{format}' for compare; use table, json or markdown"
        )));
    }
    if !(0.5..=0.9999).contains(&args.confidence) {
        return Err(Error::Usage(format!(
            "--confidence {} is out of range; use a level between 0.5 and 0.9999, e.g. 0.95",
            args.confidence
        )));
    }
    let load = |path: &PathBuf| -> Result<Run, Error> {
        let (name, text) = read_report_text(path)?;
        Run::parse(&text, &name).map_err(Error::Input)
    };
    let base = load(&args.base)?;
    let current = args
        .current
        .iter()
        .map(load)
        .collect::<Result<Vec<_>, _>>()?;
    let opts = compare::Options {
        threshold: args.threshold,
        confidence: args.confidence,
        resamples: args.resamples as usize,
        seed: args.seed,
        patterns: args.metrics.clone(),
    };
    let c = compare::compare(&base, &current, &opts).map_err(Error::Input)?;
    let stdout = match format {
        "json" => render::compare::json(&c),
        "markdown" => render::compare::markdown(&c),
        _ => render::compare::table(&c),
    };
    let s = &c.summary;
    let (note, exit_code) = if c.passed {
        (None, EXIT_OK)
    } else {
        (
            Some(format!(
                "performance regression: {} metric comparison(s) regressed beyond {:.1}%, {} slow outlier node(s)",
                s.regressions,
                c.threshold * 100.0,
                s.slow_outliers
            )),
            EXIT_FAIL,
        )
    };
    Ok(Outcome {
        stdout,
        note,
        exit_code,
    })
}
