//! Command-line definitions (clap derive) and the commands behind them.
//!
//! Commands return an [`Outcome`] (text for stdout, an optional note for stderr, the exit
//! code) or a typed [`Error`]; `main` prints and exits.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::error::{Error, EXIT_FAIL, EXIT_OK};
use crate::probe::{self, ProbeOptions};
use crate::render::{self, query, Format};

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

    /// Path of libnvidia-ml.so.1 to load instead of searching for it.
    #[arg(long, value_name = "PATH", env = "ACCELPROBE_NVML_LIB")]
    pub nvml_lib: Option<PathBuf>,

    /// Deadline for all hardware calls together, e.g. 10s, 500ms, 2m.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration, env = "ACCELPROBE_TIMEOUT")]
    pub timeout: Duration,

    /// Exit 1 when no accelerator is found (the report is still printed).
    #[arg(long)]
    pub require_accelerator: bool,

    /// Do not load the CUDA driver (NVML only).
    #[arg(long)]
    pub no_cuda: bool,
}

/// What a command produced.
#[derive(Debug)]
pub struct Outcome {
    pub stdout: String,
    /// A one-line note for stderr (the reason behind a non-zero exit).
    pub note: Option<String>,
    pub exit_code: i32,
}

/// Parse a duration: `10s`, `500ms`, `2m`, or plain seconds (`10`, `0.5`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (num, scale) = if let Some(n) = t.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else {
        (t, 1.0)
    };
    let value: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("'{text}' is not a duration; use e.g. 10s, 500ms or 2m"))?;
    let secs = value * scale;
    if !(secs.is_finite() && secs > 0.0 && secs <= 3600.0) {
        return Err(format!(
            "'{text}' is out of range; use more than 0 and at most 1 hour"
        ));
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

    let report = probe::probe(&ProbeOptions {
        nvml_lib: args.nvml_lib.clone(),
        timeout: args.timeout,
        skip_cuda: args.no_cuda,
    });

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

#[cfg(test)]
mod tests {
    use super::*;

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
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
