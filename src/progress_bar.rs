//! The progress bar `bench` shows on a terminal (and only there).

use std::io::IsTerminal;

use accelprobe::bench::Progress;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A bar on stderr when stderr is a terminal; silent otherwise.
pub struct Bar {
    bar: Option<ProgressBar>,
}

impl Bar {
    pub fn for_stderr() -> Bar {
        if !std::io::stderr().is_terminal() {
            return Bar { bar: None };
        }
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}") {
            bar.set_style(style);
        }
        Bar { bar: Some(bar) }
    }
}

impl Progress for Bar {
    fn start(&self, total: usize) {
        if let Some(b) = &self.bar {
            b.set_length(b.length().unwrap_or(0) + total as u64);
        }
    }

    fn item(&self, label: &str) {
        if let Some(b) = &self.bar {
            b.set_message(label.to_string());
        }
    }

    fn advance(&self) {
        if let Some(b) = &self.bar {
            b.inc(1);
        }
    }

    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
