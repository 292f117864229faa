//! Renderers: the only code that turns reports into text for people and scripts. They return
//! strings; `main` writes them out.

pub mod bench;
pub mod catalog;
pub mod compare;
pub mod fleet;
pub mod manifests;
pub mod query;
pub mod table;
pub mod verdict;

use crate::error::Error;
use crate::report::Report;

/// Output format of `report`, parsed from nvidia-smi's spelling (`csv,noheader,nounits`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    Csv { header: bool, units: bool },
}

impl Format {
    /// Parse `table`, `json`, or `csv` with optional `noheader` / `nounits` modifiers.
    pub fn parse(text: &str) -> Result<Format, Error> {
        let mut parts = text.split(',').map(str::trim);
        let base = parts.next().unwrap_or_default();
        let mods: Vec<&str> = parts.collect();
        match base {
            "table" | "json" if !mods.is_empty() => Err(Error::Usage(format!(
                "--format {base} takes no modifiers ({}); modifiers go with csv",
                mods.join(",")
            ))),
            "table" => Ok(Format::Table),
            "json" => Ok(Format::Json),
            "csv" => {
                let (mut header, mut units) = (true, true);
                for m in mods {
                    match m {
                        "noheader" => header = false,
                        "nounits" => units = false,
                        other => {
                            return Err(Error::Usage(format!(
                                "unknown --format modifier '{other}'; use csv[,noheader][,nounits]"
                            )))
                        }
                    }
                }
                Ok(Format::Csv { header, units })
            }
            other => Err(Error::Usage(format!(
                "unknown --format '{other}'; use table, json or csv[,noheader][,nounits]"
            ))),
        }
    }
}

/// Cut `s` to `max` characters, ending in `...` when cut (as nvidia-smi does with names).
pub(crate) fn fit(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let keep: String = s.chars().take(max.saturating_sub(3)).collect();
        format!("{keep}...")
    }
}

/// Keep the end of `s` (process paths), starting with `...` when cut, as nvidia-smi does.
pub(crate) fn fit_tail(s: &str, max: usize) -> String {
    let n = s.chars().count();
    if n <= max {
        s.to_string()
    } else {
        let tail: String = s.chars().skip(n - max.saturating_sub(3)).collect();
        format!("...{tail}")
    }
}

/// The report as pretty JSON with a trailing newline.
pub fn json(report: &Report) -> String {
    pretty_json(report)
}

/// Any document as pretty JSON with a trailing newline (what every `--format json` prints).
pub fn pretty_json<T: serde::Serialize>(v: &T) -> String {
    // Unreachable for these types (string keys, finite numbers); still valid JSON, no panic.
    let mut s = serde_json::to_string_pretty(v)
        .unwrap_or_else(|e| serde_json::json!({ "error": e.to_string() }).to_string());
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nvidia_smi_format_spelling() {
        assert_eq!(Format::parse("table").unwrap(), Format::Table);
        assert_eq!(Format::parse("json").unwrap(), Format::Json);
        assert_eq!(
            Format::parse("csv").unwrap(),
            Format::Csv {
                header: true,
                units: true
            }
        );
        assert_eq!(
            Format::parse("csv,noheader,nounits").unwrap(),
            Format::Csv {
                header: false,
                units: false
            }
        );
        assert!(Format::parse("csv,bogus").is_err());
        assert!(Format::parse("json,noheader").is_err());
        assert!(Format::parse("xml").is_err());
    }
}
