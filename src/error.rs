//! Typed errors of the library and the one mapping from error to process exit code.

/// Exit code: success.
pub const EXIT_OK: i32 = 0;
/// Exit code: the command ran, and its answer is "no" (no accelerator with
/// `--require-accelerator`, a failed verdict, a wrong kernel result).
pub const EXIT_FAIL: i32 = 1;
/// Exit code: bad arguments or bad input; nothing was judged.
pub const EXIT_USAGE: i32 = 2;
/// Exit code: a service (`serve`) could not start or stopped: port in use, database not
/// writable, Kubernetes API unreachable.
pub const EXIT_SERVICE: i32 = 3;

/// Everything that can stop a command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A command-line value that parses but makes no sense.
    #[error("{0}")]
    Usage(String),
    /// `--query-gpu` named a field accelprobe does not know.
    #[error("unknown --query-gpu field '{field}'; valid fields: {valid}")]
    UnknownQueryField { field: String, valid: String },
    /// `--require-accelerator` and the probe found none.
    #[error(
        "no accelerator found (runtimes: {summary}); drop --require-accelerator to report anyway"
    )]
    NoAccelerator { summary: String },
    /// An input file or value is malformed; the message names where and what to do.
    #[error("{0}")]
    Input(String),
    /// The collector could not start or stopped.
    #[error("{0}")]
    Service(String),
}

impl Error {
    /// The process exit code for this error (documented in the README).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) | Error::Input(_) | Error::UnknownQueryField { .. } => EXIT_USAGE,
            Error::NoAccelerator { .. } => EXIT_FAIL,
            Error::Service(_) => EXIT_SERVICE,
        }
    }
}
