//! The committed JSON Schema must match the Rust types. Regenerate with
//! `ACCELPROBE_UPDATE_SCHEMA=1 cargo test --test schema`.

use std::path::Path;

#[test]
fn committed_schema_is_fresh() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/report.schema.json");
    let fresh = accelprobe::report::json_schema_text();
    if std::env::var_os("ACCELPROBE_UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &fresh).expect("write docs/report.schema.json");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == fresh,
        "docs/report.schema.json is stale; run ACCELPROBE_UPDATE_SCHEMA=1 cargo test --test schema and commit it"
    );
}

#[test]
fn schema_names_the_contract_fields() {
    let schema = accelprobe::report::json_schema();
    let required = schema["required"].as_array().expect("required list");
    for field in [
        "schema_version",
        "tool",
        "id",
        "created_at",
        "host",
        "runtimes",
        "devices",
        "errors",
    ] {
        assert!(
            required.iter().any(|v| v == field),
            "{field} missing from required"
        );
    }
}

#[test]
fn committed_verdict_schema_is_fresh() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/verdict.schema.json");
    let fresh = accelprobe::verify::verdict::json_schema_text();
    if std::env::var_os("ACCELPROBE_UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &fresh).expect("write docs/verdict.schema.json");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == fresh,
        "docs/verdict.schema.json is stale; run ACCELPROBE_UPDATE_SCHEMA=1 cargo test --test schema and commit it"
    );
}
