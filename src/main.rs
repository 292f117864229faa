//! accelprobe's entry point: parse arguments, dispatch, print, exit with the documented code.

use std::io::Write;

mod progress_bar;
use progress_bar as progress;

use accelprobe::cli::{self, Cli, Command};
use accelprobe::error::{EXIT_OK, EXIT_USAGE};
use clap::error::ErrorKind;
use clap::Parser;

fn main() {
    let code = run();
    if accelprobe::probe::guard::workers_abandoned() {
        // A probe thread is stuck inside a vendor library: skip the exit handlers, which
        // could wait on it forever. Output is already flushed.
        let _ = std::io::stderr().flush();
        // SAFETY: _exit ends the process immediately; nothing else runs afterwards.
        unsafe { libc::_exit(code) }
    }
    std::process::exit(code);
}

/// Every environment variable that stands for an option, as the CLI definition declares them.
fn option_env_vars() -> Vec<String> {
    use clap::CommandFactory;
    let cmd = Cli::command();
    let mut vars: Vec<String> = std::iter::once(&cmd)
        .chain(cmd.get_subcommands())
        .flat_map(|c| c.get_arguments())
        .filter_map(|a| a.get_env())
        .map(|v| v.to_string_lossy().into_owned())
        .collect();
    vars.sort();
    vars.dedup();
    vars
}

fn run() -> i32 {
    // Set-but-empty is a mistake worth naming (clap would only name the option).
    for var in option_env_vars() {
        if std::env::var_os(&var).is_some_and(|v| v.is_empty()) {
            write_stderr(&format!(
                "accelprobe: environment variable {var} is set but empty; unset it or give it a value\n"
            ));
            return EXIT_USAGE;
        }
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return argument_error(&e),
    };
    let mut first_round = true;
    let result = match &cli.command {
        Command::Report(args) => cli::report(args),
        Command::Bench(args) => cli::bench(args, &progress::Bar::for_stderr()),
        Command::Catalog(args) => cli::catalog(args),
        Command::Verify(args) => cli::verify(args),
        Command::Run(args) => match args.every {
            None => cli::run(args, &progress::Bar::for_stderr()),
            Some(every) => loop {
                // Fleet mode: bad settings stop the first round (exit 2); later a round that
                // cannot run is reported and the next one tried.
                match cli::run(args, &progress::Bar::for_stderr()) {
                    Ok(out) => {
                        emit(out);
                    }
                    Err(e) if first_round => break Err(e),
                    Err(e) => write_stderr(&format!("accelprobe: {e}\n")),
                }
                first_round = false;
                write_stderr(&format!(
                    "accelprobe: next round in {}\n",
                    cli::duration_text(every)
                ));
                std::thread::sleep(every);
            },
        },
        Command::Serve(args) => cli::serve(args),
        Command::Manifests(args) => cli::manifests(args),
        Command::Compare(args) => cli::compare(args),
    };
    match result {
        Ok(out) => emit(out),
        Err(e) => {
            write_stderr(&format!("accelprobe: {e}\n"));
            e.exit_code()
        }
    }
}

/// Print an outcome; its exit code.
fn emit(out: cli::Outcome) -> i32 {
    write_stdout(&out.stdout);
    if let Some(note) = out.note {
        write_stderr(&format!("accelprobe: {note}\n"));
    }
    out.exit_code
}

/// Help and version go to stdout with exit 0; every other argument error is one line on
/// stderr with exit 2.
fn argument_error(e: &clap::Error) -> i32 {
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            write_stdout(&e.to_string());
            EXIT_OK
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            write_stderr(&e.to_string());
            EXIT_USAGE
        }
        _ => {
            write_stderr(&format!(
                "accelprobe: {}; see 'accelprobe --help'\n",
                first_paragraph(&e.to_string())
            ));
            EXIT_USAGE
        }
    }
}

/// clap's message up to its first blank line, as one line: "the following required arguments
/// were not provided:" keeps the arguments it lists on the lines after it.
fn first_paragraph(text: &str) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .take_while(|l| !l.is_empty())
        .collect();
    let joined = lines.join(" ");
    let joined = joined.strip_prefix("error: ").unwrap_or(&joined);
    if joined.is_empty() {
        "invalid arguments".to_string()
    } else {
        joined.to_string()
    }
}

/// Write to stdout; a closed pipe (`accelprobe report | head`) is not an error.
fn write_stdout(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|_| out.flush());
}

/// Write to stderr; a closed stderr is not worth a panic.
fn write_stderr(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(text.as_bytes()).and_then(|_| err.flush());
}
