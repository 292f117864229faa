//! Property tests: the text parsers never panic, whatever they are given, and reject what
//! they cannot understand with an error rather than a made-up value.

use accelprobe::cli::parse_duration;
use accelprobe::probe::host::{
    parse_cpu_count, parse_cpu_model, parse_ec2_instance_type, parse_meminfo_total_mib,
    parse_os_release,
};
use accelprobe::render::{query, Format};
use accelprobe::report::Report;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn host_parsers_take_any_text(s in ".*") {
        let _ = parse_os_release(&s);
        let _ = parse_cpu_model(&s);
        let _ = parse_cpu_count(&s);
        let _ = parse_meminfo_total_mib(&s);
        let _ = parse_ec2_instance_type(Some(&s), Some(&s));
    }

    #[test]
    fn meminfo_round_trips(kib in 0u64..(1u64 << 50)) {
        let text = format!("MemFree: 1 kB\nMemTotal: {kib} kB\n");
        prop_assert_eq!(parse_meminfo_total_mib(&text), Some(kib / 1024));
    }

    #[test]
    fn cli_value_parsers_take_any_text(s in ".*") {
        let _ = Format::parse(&s);
        let _ = query::parse_fields(&s);
        if let Ok(d) = parse_duration(&s) {
            prop_assert!(d.as_secs_f64() > 0.0 && d.as_secs_f64() <= 3600.0);
        }
    }

    #[test]
    fn durations_in_milliseconds_round_trip(ms in 1u64..3_600_000) {
        prop_assert_eq!(parse_duration(&format!("{ms}ms")).unwrap().as_millis(), u128::from(ms));
    }

    #[test]
    fn report_parser_takes_any_text(s in ".*") {
        let _ = Report::parse_json(&s);
    }

    #[test]
    fn report_parser_takes_any_json_shape(v in json_value()) {
        let _ = Report::parse_json(&v.to_string());
    }
}

/// Arbitrary JSON, with the report's top-level keys likely to appear.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(|f| serde_json::json!(f)),
        ".{0,12}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        let key = prop_oneof![
            Just("schema_version".to_string()),
            Just("devices".to_string()),
            Just("runtimes".to_string()),
            Just("host".to_string()),
            Just("memory_total_mib".to_string()),
            "[a-z_]{1,10}",
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
            prop::collection::btree_map(key, inner, 0..6)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

#[test]
fn newer_schema_is_refused_with_a_clear_message() {
    let text = r#"{"schema_version": 99, "tool": {"name": "accelprobe", "version": "9"}}"#;
    let err = Report::parse_json(text).unwrap_err().to_string();
    assert!(err.contains("newer") && err.contains("upgrade"), "{err}");
    let err = Report::parse_json("{\n  \"schema_version\": 1,\n  oops")
        .unwrap_err()
        .to_string();
    assert!(err.contains("line 3"), "{err}");
    let err = Report::parse_json("[1, 2]").unwrap_err().to_string();
    assert!(err.starts_with("not an accelprobe report"), "{err}");
}
