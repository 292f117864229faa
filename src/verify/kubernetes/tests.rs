//! Tests of the Kubernetes input layer. Fixtures live in `tests/fixtures/k8s/` (the seed's
//! NodePool and Pod copied verbatim as `seed-*.yaml`); nothing outside the repository is read.

use std::path::{Path, PathBuf};

use super::yaml;
use super::*;
use crate::verify::source::Source;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/k8s")
        .join(name)
}

fn manifests(name: &str) -> Manifests {
    read_manifests(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// (line, column) of a file source.
fn at(source: &Source) -> (usize, usize) {
    match source {
        Source::File { line, column, .. } => (*line, *column),
        other => panic!("not a file source: {other:?}"),
    }
}

fn src() -> Source {
    Source::Flag {
        text: "test".to_string(),
    }
}

fn req(key: &str, op: Operator, values: &[&str]) -> Requirement {
    Requirement::new(key, op, values, src())
}

// ---------------------------------------------------------------------------------------------
// Operators

#[test]
fn every_operator_matches_with_karpenter_semantics() {
    use Operator::*;
    // (operator, values, node's label value (None: absent), expected)
    let table: &[(Operator, &[&str], Option<&str>, bool)] = &[
        (In, &["l40s", "l4"], Some("l40s"), true),
        (In, &["l40s", "l4"], Some("a10g"), false),
        (In, &["l40s"], Some("L40S"), false),
        (In, &["l40s"], None, false),
        (NotIn, &["spot"], Some("on-demand"), true),
        (NotIn, &["spot"], Some("spot"), false),
        (NotIn, &["spot"], None, true),
        (Exists, &[], Some(""), true),
        (Exists, &[], Some("x"), true),
        (Exists, &[], None, false),
        (DoesNotExist, &[], None, true),
        (DoesNotExist, &[], Some("1"), false),
        (Gt, &["1"], Some("2"), true),
        (Gt, &["1"], Some("1"), false),
        (Gt, &["1"], Some("+2"), true),
        (Gt, &["-1"], Some("0"), true),
        (Gt, &["1"], Some("two"), false),
        (Gt, &["1"], Some("2.0"), false),
        (Gt, &["1"], Some(" 2"), false),
        (Gt, &["1"], None, false),
        (Lt, &["45776"], Some("22888"), true),
        (Lt, &["45776"], Some("45776"), false),
        (Lt, &["45776"], Some("99999999999999999999"), false),
        (Lt, &["4"], None, false),
        (Gte, &["4"], Some("4"), true),
        (Gte, &["4"], Some("3"), false),
        (Gte, &["4"], Some("008"), true),
        (Gte, &["4"], None, false),
        (Lte, &["8"], Some("8"), true),
        (Lte, &["8"], Some("9"), false),
        (Lte, &["8"], Some("-3"), true),
        (Lte, &["8"], None, false),
        // A bound that is not an integer never matches.
        (Gt, &["x"], Some("5"), false),
    ];
    for (op, values, label, expected) in table {
        let r = req("karpenter.k8s.aws/instance-gpu-count", *op, values);
        assert_eq!(r.matches(*label), *expected, "{r} against {label:?}");
        // The constraint form agrees with the requirement.
        assert_eq!(
            r.constraint().matches(*label),
            *expected,
            "constraint of {r} against {label:?}"
        );
    }
}

#[test]
fn operators_parse_exactly_and_list_per_context() {
    for op in Operator::ALL {
        assert_eq!(Operator::parse(op.as_str()), Some(op));
        assert_eq!(op.to_string(), op.as_str());
    }
    for bad in ["in", "IN", "notin", "Equal", "GreaterThan", "", " In"] {
        assert_eq!(Operator::parse(bad), None, "{bad:?}");
    }
    assert_eq!(
        Operator::list(RequirementContext::NodePool),
        "In, NotIn, Exists, DoesNotExist, Gt, Lt, Gte, Lte"
    );
    assert_eq!(
        Operator::list(RequirementContext::NodeAffinity),
        "In, NotIn, Exists, DoesNotExist, Gt, Lt"
    );
    assert!(Operator::ALL.iter().filter(|o| o.is_numeric()).count() == 4);
}

#[test]
fn every_operator_validates_its_values() {
    use Operator::*;
    use RequirementContext::{NodeAffinity as Pod, NodePool as Pool};
    use RequirementField as F;
    // (context, operator, values, minValues, Ok or (field, part of the message))
    type Case<'a> = (
        RequirementContext,
        Operator,
        &'a [&'a str],
        Option<u32>,
        Result<(), (F, &'a str)>,
    );
    let table: &[Case] = &[
        (Pool, In, &["g6e"], None, Ok(())),
        (
            Pool,
            In,
            &[],
            None,
            Err((F::Values, "needs at least one value")),
        ),
        (
            Pod,
            In,
            &[],
            None,
            Err((F::Values, "needs at least one value")),
        ),
        (Pool, NotIn, &["spot"], None, Ok(())),
        (
            Pool,
            NotIn,
            &[],
            None,
            Err((F::Values, "needs at least one value")),
        ),
        (Pool, Exists, &[], None, Ok(())),
        (
            Pool,
            Exists,
            &["x"],
            None,
            Err((F::Values, "takes no values")),
        ),
        (Pod, DoesNotExist, &[], None, Ok(())),
        (
            Pod,
            DoesNotExist,
            &["x"],
            None,
            Err((F::Values, "takes no values")),
        ),
        (Pool, Gt, &["1"], None, Ok(())),
        (
            Pool,
            Gt,
            &[],
            None,
            Err((F::Values, "exactly one integer value")),
        ),
        (
            Pool,
            Gt,
            &["1", "2"],
            None,
            Err((F::Values, "exactly one integer value")),
        ),
        (
            Pool,
            Gt,
            &["one"],
            None,
            Err((F::Value(0), "needs an integer value")),
        ),
        (Pool, Gt, &["-1"], None, Err((F::Value(0), "non-negative"))),
        (Pod, Gt, &["-1"], None, Ok(())),
        (Pod, Lt, &["4"], None, Ok(())),
        (
            Pool,
            Lt,
            &["4.5"],
            None,
            Err((F::Value(0), "needs an integer value")),
        ),
        (Pool, Gte, &["2"], None, Ok(())),
        (Pool, Lte, &["16"], None, Ok(())),
        (
            Pool,
            Lte,
            &["16", "32"],
            None,
            Err((F::Values, "exactly one integer value")),
        ),
        (
            Pod,
            Gte,
            &["2"],
            None,
            Err((F::Operator, "Karpenter NodePool operator")),
        ),
        (
            Pod,
            Lte,
            &["2"],
            None,
            Err((F::Operator, "Karpenter NodePool operator")),
        ),
        (Pool, In, &["g6e", "g6"], Some(2), Ok(())),
        (
            Pool,
            In,
            &["g6e", "g6"],
            Some(3),
            Err((F::MinValues, "values lists only 2")),
        ),
        (Pool, Exists, &[], Some(5), Ok(())),
        (
            Pool,
            Exists,
            &[],
            Some(0),
            Err((F::MinValues, "from 1 to 50")),
        ),
        (
            Pool,
            Exists,
            &[],
            Some(51),
            Err((F::MinValues, "from 1 to 50")),
        ),
        (
            Pool,
            In,
            &["ok", "not ok"],
            None,
            Err((F::Value(1), "label value 'not ok'")),
        ),
        (
            Pool,
            In,
            &[&"x".repeat(64)],
            None,
            Err((F::Value(0), "longer than 63")),
        ),
        (Pool, In, &[""], None, Ok(())),
    ];
    for (context, op, values, min_values, expected) in table {
        let mut r = req("karpenter.k8s.aws/instance-family", *op, values);
        r.min_values = *min_values;
        match (r.validate(*context), expected) {
            (Ok(()), Ok(())) => {}
            (Err(e), Err((field, part))) => {
                assert_eq!(e.field, *field, "{r} in {context:?}: {e}");
                assert!(e.message.contains(part), "{r} in {context:?}: {e}");
            }
            (got, want) => panic!("{r} in {context:?}: got {got:?}, want {want:?}"),
        }
    }
    // The key is checked too.
    let bad_key = req("Karpenter.K8s.aws/instance-family", Operator::Exists, &[]);
    assert_eq!(bad_key.validate(Pool).unwrap_err().field, F::Key);
    let empty = req("", Operator::Exists, &[]);
    assert_eq!(empty.validate(Pool).unwrap_err().field, F::Key);
}

#[test]
fn parse_int_is_go_atoi() {
    let table: &[(&str, Option<i64>)] = &[
        ("0", Some(0)),
        ("42", Some(42)),
        ("+7", Some(7)),
        ("-7", Some(-7)),
        ("007", Some(7)),
        ("9223372036854775807", Some(i64::MAX)),
        ("9223372036854775808", None),
        ("", None),
        ("+", None),
        ("1_000", None),
        (" 1", None),
        ("1.0", None),
        ("0x10", None),
    ];
    for (s, want) in table {
        assert_eq!(parse_int(s), *want, "{s:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Combining requirements

#[test]
fn intersections_follow_karpenter() {
    use Operator::*;
    // (requirements on one key, describe(), unsatisfiable, absent allowed, values that match)
    type Case<'a> = (
        &'a [(Operator, &'a [&'a str])],
        &'a str,
        bool,
        bool,
        &'a [&'a str],
    );
    let table: &[Case] = &[
        (
            &[(In, &["l40s"]), (In, &["l4"])],
            "nothing (contradictory requirements)",
            true,
            false,
            &[],
        ),
        (
            &[(In, &["l40s", "l4"]), (In, &["l4", "a10g"])],
            "l4",
            false,
            false,
            &["l4"],
        ),
        (
            &[(In, &["g6e", "g6"]), (NotIn, &["g6"])],
            "g6e",
            false,
            false,
            &["g6e"],
        ),
        (
            &[(NotIn, &["spot"]), (NotIn, &["reserved"])],
            "not reserved, spot, or absent",
            false,
            true,
            &["on-demand"],
        ),
        (
            &[(NotIn, &["a"]), (DoesNotExist, &[])],
            "absent",
            false,
            true,
            &[],
        ),
        (
            &[(Exists, &[]), (DoesNotExist, &[])],
            "nothing (contradictory requirements)",
            true,
            false,
            &[],
        ),
        (
            &[(In, &["a"]), (DoesNotExist, &[])],
            "nothing (contradictory requirements)",
            true,
            false,
            &[],
        ),
        (
            &[(Exists, &[]), (NotIn, &["1"])],
            "not 1",
            false,
            false,
            &["2", "x"],
        ),
        (
            &[(Gt, &["1"]), (Lt, &["8"])],
            "from 2 to 7",
            false,
            false,
            &["2", "7"],
        ),
        (
            &[(Gte, &["2"]), (Lte, &["2"])],
            "= 2",
            false,
            false,
            &["2", "+2"],
        ),
        (
            &[(Gt, &["4"]), (Lt, &["5"])],
            "nothing (contradictory requirements)",
            true,
            false,
            &[],
        ),
        (
            &[(Gte, &["8"]), (Lte, &["4"])],
            "nothing (contradictory requirements)",
            true,
            false,
            &[],
        ),
        (
            &[(In, &["1", "4", "8", "x"]), (Gt, &["2"])],
            "one of 4, 8",
            false,
            false,
            &["4", "8"],
        ),
        (
            &[(In, &["1", "2"]), (Gte, &["3"])],
            "nothing (contradictory requirements)",
            true,
            false,
            &[],
        ),
        (
            &[(Gte, &["2"]), (NotIn, &["4"])],
            "not 4, >= 2",
            false,
            false,
            &["2", "3", "5"],
        ),
        (&[(Exists, &[])], "any value", false, false, &["anything"]),
        (
            &[(NotIn, &["x"]), (DoesNotExist, &[]), (Exists, &[])],
            "nothing (contradictory requirements)",
            true,
            false,
            &[],
        ),
    ];
    let key = "eks.amazonaws.com/instance-gpu-count";
    for (reqs, describe, unsat, absent, matching) in table {
        let rs: Vec<Requirement> = reqs.iter().map(|(op, v)| req(key, *op, v)).collect();
        let c = Constraints::from_requirements(&rs);
        assert_eq!(c.len(), 1);
        let k = c.iter().next().unwrap();
        let name = rs
            .iter()
            .map(|r| r.to_string())
            .collect::<Vec<_>>()
            .join(" AND ");
        assert_eq!(k.describe(), *describe, "{name}");
        assert_eq!(k.is_unsatisfiable(), *unsat, "{name}");
        assert_eq!(k.allows_absent(), *absent, "{name}");
        assert_eq!(k.matches(None), *absent, "{name}");
        assert_eq!(k.sources.len(), rs.len());
        for v in *matching {
            assert!(k.matches(Some(v)), "{name} should allow {v}");
            // Each requirement alone allows it too.
            assert!(rs.iter().all(|r| r.matches(Some(v))), "{name}: {v}");
        }
        assert_eq!(c.unsatisfiable().len(), usize::from(*unsat));
    }
}

#[test]
fn intersection_agrees_with_requirements_on_sample_values() {
    use Operator::*;
    let all: Vec<(Operator, Vec<&str>)> = vec![
        (In, vec!["1", "4"]),
        (In, vec!["4", "x"]),
        (NotIn, vec!["4"]),
        (NotIn, vec!["x", "8"]),
        (Exists, vec![]),
        (DoesNotExist, vec![]),
        (Gt, vec!["2"]),
        (Lt, vec!["8"]),
        (Gte, vec!["4"]),
        (Lte, vec!["4"]),
    ];
    let samples: [Option<&str>; 9] = [
        None,
        Some("0"),
        Some("1"),
        Some("2"),
        Some("4"),
        Some("8"),
        Some("9"),
        Some("x"),
        Some("04"),
    ];
    for (a_op, a_v) in &all {
        for (b_op, b_v) in &all {
            let a = req("k", *a_op, a_v);
            let b = req("k", *b_op, b_v);
            let both = a.constraint().intersect(&b.constraint());
            for s in samples {
                assert_eq!(
                    both.matches(s),
                    a.matches(s) && b.matches(s),
                    "{a} AND {b} on {s:?}: {}",
                    both.describe()
                );
            }
        }
    }
}

#[test]
fn both_label_prefixes_are_one_key_when_combining() {
    let c = Constraints::from_requirements(&[
        req(
            "eks.amazonaws.com/instance-gpu-name",
            Operator::In,
            &["l40s"],
        ),
        req("karpenter.k8s.aws/instance-gpu-name", Operator::In, &["l4"]),
    ]);
    assert_eq!(c.len(), 1);
    let k = c.well_known(WellKnown::InstanceGpuName).unwrap();
    assert!(k.is_unsatisfiable());
    assert_eq!(k.key.to_string(), "eks.amazonaws.com/instance-gpu-name");
}

#[test]
fn seed_nodepool_and_pod_combine() {
    let pool = &manifests("seed-nodepool-gpu.yaml").node_pools[0];
    let pod = &manifests("seed-pod.yaml").pods[0];
    let alternatives = pod.constraint_alternatives();
    assert_eq!(alternatives.len(), 1);
    assert!(pool
        .constraints()
        .incompatibilities(&alternatives[0])
        .is_empty());
    let both = pool.constraints().and(&alternatives[0]);
    assert!(both.unsatisfiable().is_empty());
    // Labels of a g6e.2xlarge satisfy everything; a g6.2xlarge (L4) fails the GPU name.
    const G6E: [(&str, &str); 6] = [
        ("node.kubernetes.io/instance-type", "g6e.2xlarge"),
        ("karpenter.k8s.aws/instance-family", "g6e"),
        ("karpenter.k8s.aws/instance-gpu-name", "l40s"),
        ("kubernetes.io/arch", "amd64"),
        ("karpenter.sh/capacity-type", "on-demand"),
        ("eks.amazonaws.com/compute-type", "auto"),
    ];
    let lookup = |labels: &'static [(&'static str, &'static str)]| {
        move |k: &LabelKey| labels.iter().find(|(key, _)| k.is(key)).map(|(_, v)| *v)
    };
    assert!(both.matches(lookup(&G6E)));
    const G6: [(&str, &str); 5] = [
        ("karpenter.k8s.aws/instance-family", "g6"),
        ("karpenter.k8s.aws/instance-gpu-name", "l4"),
        ("kubernetes.io/arch", "amd64"),
        ("karpenter.sh/capacity-type", "on-demand"),
        ("eks.amazonaws.com/compute-type", "auto"),
    ];
    let failed: Vec<String> = both
        .mismatches(lookup(&G6))
        .iter()
        .map(|c| c.key.to_string())
        .collect();
    assert_eq!(failed, ["eks.amazonaws.com/instance-gpu-name"]);
    // The pod tolerates the NodePool's taint.
    assert!(pool.taints.iter().all(|t| pod.tolerates(t)));
}

#[test]
fn incompatible_nodepool_and_pod_are_reported() {
    let pool = Constraints::from_requirements(&[
        req("karpenter.k8s.aws/instance-family", Operator::In, &["g6"]),
        req("karpenter.k8s.aws/instance-gpu-name", Operator::In, &["l4"]),
        req("karpenter.sh/capacity-type", Operator::NotIn, &["spot"]),
    ]);
    let pod = Constraints::from_requirements(&[
        req(
            "eks.amazonaws.com/instance-gpu-name",
            Operator::In,
            &["l40s"],
        ),
        req("karpenter.sh/capacity-type", Operator::DoesNotExist, &[]),
        req("example.com/team", Operator::Exists, &[]),
        req("example.com/optional", Operator::DoesNotExist, &[]),
    ]);
    let found = pool.incompatibilities(&pod);
    let keys: Vec<String> = found.iter().map(|i| i.key.to_string()).collect();
    // capacity-type: NotIn and DoesNotExist are compatible (a node without the label passes);
    // an undefined custom label the pod only forbids is fine.
    assert_eq!(
        keys,
        ["eks.amazonaws.com/instance-gpu-name", "example.com/team"]
    );
    assert!(found[0]
        .message
        .contains("the NodePool allows l4 but the pod requires l40s"));
    assert!(found[1].message.contains("does not define"));
    assert_eq!(found[0].sources.len(), 2);
}

// ---------------------------------------------------------------------------------------------
// Label keys

#[test]
fn both_prefixes_name_each_shared_label() {
    let shared = [
        ("instance-gpu-name", WellKnown::InstanceGpuName, false),
        ("instance-gpu-count", WellKnown::InstanceGpuCount, true),
        ("instance-gpu-memory", WellKnown::InstanceGpuMemory, true),
        (
            "instance-gpu-manufacturer",
            WellKnown::InstanceGpuManufacturer,
            false,
        ),
        ("instance-family", WellKnown::InstanceFamily, false),
        ("instance-category", WellKnown::InstanceCategory, false),
        ("instance-generation", WellKnown::InstanceGeneration, true),
        ("instance-size", WellKnown::InstanceSize, false),
        (
            "instance-accelerator-name",
            WellKnown::InstanceAcceleratorName,
            false,
        ),
        (
            "instance-accelerator-count",
            WellKnown::InstanceAcceleratorCount,
            true,
        ),
        (
            "instance-accelerator-manufacturer",
            WellKnown::InstanceAcceleratorManufacturer,
            false,
        ),
        ("instance-cpu", WellKnown::InstanceCpu, true),
        (
            "instance-cpu-manufacturer",
            WellKnown::InstanceCpuManufacturer,
            false,
        ),
        ("instance-memory", WellKnown::InstanceMemory, true),
        (
            "instance-ebs-bandwidth",
            WellKnown::InstanceEbsBandwidth,
            true,
        ),
        (
            "instance-network-bandwidth",
            WellKnown::InstanceNetworkBandwidth,
            true,
        ),
        ("instance-local-nvme", WellKnown::InstanceLocalNvme, true),
        ("instance-hypervisor", WellKnown::InstanceHypervisor, false),
        (
            "instance-encryption-in-transit-supported",
            WellKnown::InstanceEncryptionInTransitSupported,
            false,
        ),
        (
            "instance-cpu-sustained-clock-speed-mhz",
            WellKnown::InstanceCpuSustainedClockSpeedMhz,
            true,
        ),
        (
            "instance-capability-flex",
            WellKnown::InstanceCapabilityFlex,
            false,
        ),
        ("instance-tenancy", WellKnown::InstanceTenancy, false),
        (
            "capacity-reservation-id",
            WellKnown::CapacityReservationId,
            false,
        ),
        (
            "capacity-reservation-type",
            WellKnown::CapacityReservationType,
            false,
        ),
    ];
    for (suffix, wk, numeric) in shared {
        for prefix in [EKS_PREFIX, KARPENTER_AWS_PREFIX] {
            let key = format!("{prefix}{suffix}");
            assert_eq!(WellKnown::from_key(&key), Some(wk), "{key}");
            assert_eq!(LabelKey::parse(&key), LabelKey::WellKnown(wk));
        }
        assert_eq!(wk.suffix(), Some(suffix));
        assert_eq!(wk.is_numeric(), numeric, "{suffix}");
        assert_eq!(wk.keys().len(), 2);
        // Other prefixes and near misses are custom keys.
        for other in [
            "node.kubernetes.io/",
            "example.com/",
            "eks.amazonaws.com/x-",
            "",
        ] {
            let key = format!("{other}{suffix}");
            assert_eq!(WellKnown::from_key(&key), None, "{key}");
            assert_eq!(LabelKey::parse(&key), LabelKey::Custom(key.clone()));
        }
    }
    let fixed = [
        ("node.kubernetes.io/instance-type", WellKnown::InstanceType),
        ("beta.kubernetes.io/instance-type", WellKnown::InstanceType),
        ("kubernetes.io/arch", WellKnown::Arch),
        ("beta.kubernetes.io/arch", WellKnown::Arch),
        ("kubernetes.io/os", WellKnown::Os),
        ("karpenter.sh/capacity-type", WellKnown::CapacityType),
        ("eks.amazonaws.com/compute-type", WellKnown::ComputeType),
        ("topology.kubernetes.io/zone", WellKnown::Zone),
        ("failure-domain.beta.kubernetes.io/zone", WellKnown::Zone),
        ("topology.kubernetes.io/region", WellKnown::Region),
        ("topology.k8s.aws/zone-id", WellKnown::ZoneId),
        ("karpenter.sh/nodepool", WellKnown::NodePool),
    ];
    for (key, wk) in fixed {
        assert_eq!(WellKnown::from_key(key), Some(wk), "{key}");
        assert_eq!(wk.suffix(), None);
    }
    // Karpenter treats node.kubernetes.io/instance-family as custom.
    assert_eq!(
        WellKnown::from_key("node.kubernetes.io/instance-family"),
        None
    );
    assert_eq!(WellKnown::from_key("karpenter.k8s.aws/compute-type"), None);
    // Every spelling round-trips; the canonical key is the first.
    for wk in WellKnown::ALL {
        let keys = wk.keys();
        assert!(!keys.is_empty(), "{wk:?}");
        assert_eq!(wk.canonical_key(), keys[0]);
        for k in &keys {
            assert_eq!(WellKnown::from_key(k), Some(*wk), "{k}");
        }
    }
}

#[test]
fn label_syntax_is_kubernetes_syntax() {
    let keys: &[(&str, bool)] = &[
        ("app", true),
        ("eks.amazonaws.com/instance-gpu-name", true),
        ("example.com/A_b.c-9", true),
        ("", false),
        ("/name", false),
        ("Example.com/x", false),
        ("example..com/x", false),
        ("example.com/", false),
        ("example.com/-x", false),
        ("a/b/c", false),
        (&"k".repeat(64), false),
    ];
    for (k, ok) in keys {
        assert_eq!(
            validate_label_key(k).is_ok(),
            *ok,
            "{k:?}: {:?}",
            validate_label_key(k)
        );
    }
    let values: &[(&str, bool)] = &[
        ("", true),
        ("l40s", true),
        ("on-demand", true),
        ("a b", false),
        ("-x", false),
        ("x.", false),
    ];
    for (v, ok) in values {
        assert_eq!(validate_label_value(v).is_ok(), *ok, "{v:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Resources

#[test]
fn every_resource_name_and_quantity_form() {
    for r in ResourceName::ALL {
        assert_eq!(ResourceName::from_name(r.as_str()), Some(r));
    }
    assert_eq!(ResourceName::from_name("aws.amazon.com/neurondevice"), None);
    assert_eq!(ResourceName::from_name("amd.com/gpu"), None);
    for r in ResourceName::ACCELERATORS {
        for (written, count) in [("1", 1), ("\"2\"", 2), ("'4'", 4), ("8.0", 8), ("0", 0)] {
            let text = format!(
                "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n    - name: c\n      resources:\n        \
                 requests:\n          {r}: {written}\n        limits:\n          {r}: {written}\n"
            );
            let m =
                parse_manifests(&text, "p.yaml").unwrap_or_else(|e| panic!("{r} {written}: {e}"));
            let c = &m.pods[0].containers[0];
            let q = c.request(r).unwrap();
            assert_eq!(q.count, Some(count), "{r}: {written}");
            assert_eq!(at(&q.source), (8, 11));
            assert_eq!(at(&c.limit(r).unwrap().source), (10, 11));
            let total = m.pods[0].accelerator_request(r).unwrap();
            assert_eq!(total.count, count);
        }
        for bad in ["0.5", "\"1.5\"", "-1", "\"one\"", "500m"] {
            let text = format!(
                "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n    - resources:\n        limits:\n          {r}: {bad}\n"
            );
            let e = parse_manifests(&text, "p.yaml").unwrap_err();
            assert!(
                matches!(e, K8sError::InvalidValue { .. }),
                "{r}: {bad}: {e}"
            );
            assert_eq!(
                e.position().map(|p| (p.line, p.column)),
                Some((7, 13 + r.as_str().len()))
            );
        }
    }
}

#[test]
fn quantities_parse_with_kubernetes_suffixes() {
    let table: &[(&str, Option<f64>)] = &[
        ("30Gi", Some(30.0 * 1024f64.powi(3))),
        ("29317Mi", Some(29317.0 * 1024f64.powi(2))),
        ("3500m", Some(3.5)),
        ("2", Some(2.0)),
        ("1.5", Some(1.5)),
        ("1k", Some(1000.0)),
        ("1e3", Some(1000.0)),
        ("128974848", Some(128974848.0)),
        ("", None),
        ("Gi", None),
        ("1GB", None),
        ("1..2", None),
        ("1e999", None),
    ];
    for (s, want) in table {
        assert_eq!(parse_quantity(s), *want, "{s:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Manifests, with positions

#[test]
fn seed_pod() {
    let m = manifests("seed-pod.yaml");
    assert!(m.warnings.is_empty());
    assert_eq!(m.pods.len(), 1);
    let pod = &m.pods[0];
    assert_eq!(pod.object.kind, "Pod");
    assert_eq!(pod.object.name.as_deref(), Some("nvidia-smi"));
    assert_eq!(at(&pod.object.source), (2, 1));
    assert_eq!(at(&pod.source), (7, 3));
    let selector: Vec<(&str, &str, (usize, usize))> = pod
        .node_selector
        .iter()
        .map(|e| (e.key.as_str(), e.value.as_str(), at(&e.source)))
        .collect();
    assert_eq!(
        selector,
        [
            ("eks.amazonaws.com/instance-gpu-name", "l40s", (8, 5)),
            ("eks.amazonaws.com/compute-type", "auto", (9, 5)),
        ]
    );
    assert_eq!(pod.node_affinity, None);
    let c = &pod.containers[0];
    assert_eq!(c.name.as_deref(), Some("nvidia-smi"));
    assert!(!c.init);
    type Row<'a> = (ResourceName, &'a str, Option<u64>, (usize, usize));
    let requests: Vec<Row> = c
        .requests
        .iter()
        .map(|q| (q.resource, q.quantity.as_str(), q.count, at(&q.source)))
        .collect();
    assert_eq!(
        requests,
        [
            (ResourceName::Memory, "30Gi", None, (18, 11)),
            (ResourceName::Cpu, "3500m", None, (19, 11)),
            (ResourceName::NvidiaGpu, "1", Some(1), (20, 11)),
        ]
    );
    assert_eq!(
        at(&c.limit(ResourceName::NvidiaGpu).unwrap().source),
        (23, 11)
    );
    assert_eq!(
        c.limit(ResourceName::Memory).unwrap().value(),
        Some(30.0 * 1024f64.powi(3))
    );
    let gpu = pod.accelerator_request(ResourceName::NvidiaGpu).unwrap();
    assert_eq!(gpu.count, 1);
    assert_eq!(gpu.sources.iter().map(at).collect::<Vec<_>>(), [(20, 11)]);
    assert_eq!(pod.accelerator_request(ResourceName::AwsNeuron), None);
    let t = &pod.tolerations[0];
    assert_eq!(
        (t.key.as_deref(), t.operator, t.value.as_deref(), t.effect),
        (
            Some("nvidia.com/gpu"),
            TolerationOperator::Exists,
            None,
            Some(TaintEffect::NoSchedule)
        )
    );
    assert_eq!(at(&t.source), (25, 7));
    let alternatives = pod.alternatives();
    assert_eq!(alternatives.len(), 1);
    assert_eq!(
        alternatives[0]
            .iter()
            .map(|r| r.to_string())
            .collect::<Vec<_>>(),
        [
            "eks.amazonaws.com/instance-gpu-name In [l40s]",
            "eks.amazonaws.com/compute-type In [auto]"
        ]
    );
}

#[test]
fn seed_nodepool() {
    let m = manifests("seed-nodepool-gpu.yaml");
    assert!(m.warnings.is_empty());
    let pool = &m.node_pools[0];
    assert_eq!(pool.object.name.as_deref(), Some("gpu"));
    assert_eq!(pool.api_version, "karpenter.sh/v1");
    let reqs: Vec<(String, (usize, usize))> = pool
        .requirements
        .iter()
        .map(|r| (r.to_string(), at(&r.source)))
        .collect();
    assert_eq!(
        reqs,
        [
            (
                "karpenter.sh/capacity-type In [on-demand]".to_string(),
                (21, 11)
            ),
            ("kubernetes.io/arch In [amd64]".to_string(), (24, 11)),
            (
                "eks.amazonaws.com/instance-family In [g6e, g6]".to_string(),
                (27, 11)
            ),
        ]
    );
    assert_eq!(pool.taints.len(), 1);
    assert_eq!(pool.taints[0].to_string(), "nvidia.com/gpu:NoSchedule");
    assert_eq!(at(&pool.taints[0].source), (33, 11));
    assert!(pool.startup_taints.is_empty());
    assert!(pool.labels.is_empty());
    let family = pool.constraints();
    let family = family.well_known(WellKnown::InstanceFamily).unwrap();
    assert_eq!(family.describe(), "one of g6, g6e");
}

#[test]
fn job_pod_template() {
    let m = manifests("job.yaml");
    let pod = &m.pods[0];
    assert_eq!(pod.object.kind, "Job");
    assert_eq!(pod.object.name.as_deref(), Some("accelprobe-validate"));
    assert_eq!(pod.object.namespace.as_deref(), Some("accelprobe"));
    assert_eq!(at(&pod.source), (11, 7));
    assert_eq!(
        pod.node_selector[0].key,
        "karpenter.k8s.aws/instance-gpu-name"
    );
    assert_eq!(at(&pod.node_selector[0].source), (13, 9));
    // A limit alone is the request; a string quantity is fine.
    let gpu = pod.accelerator_request(ResourceName::NvidiaGpu).unwrap();
    assert_eq!(
        (gpu.count, gpu.sources.iter().map(at).collect::<Vec<_>>()),
        (1, vec![(19, 15)])
    );
    assert_eq!(pod.tolerations.len(), 2);
    assert_eq!(at(&pod.tolerations[1].source), (24, 11));
    let startup = Taint {
        key: "accelprobe.io/unverified".to_string(),
        value: None,
        effect: TaintEffect::NoSchedule,
        source: src(),
    };
    assert!(pod.tolerates(&startup));
}

#[test]
fn deployment_required_affinity() {
    let m = manifests("deployment.yaml");
    let pod = &m.pods[0];
    assert_eq!(pod.object.kind, "Deployment");
    let terms = pod.node_affinity.as_ref().unwrap();
    assert_eq!(terms.len(), 1);
    assert_eq!(at(&terms[0].source), (17, 17));
    let reqs: Vec<(String, (usize, usize))> = terms[0]
        .requirements
        .iter()
        .map(|r| (r.to_string(), at(&r.source)))
        .collect();
    assert_eq!(
        reqs,
        [
            (
                "eks.amazonaws.com/instance-gpu-name In [a10g, l4]".to_string(),
                (18, 21)
            ),
            (
                "karpenter.k8s.aws/instance-gpu-count Gt 1".to_string(),
                (21, 21)
            ),
        ]
    );
    // Preferred affinity is not a requirement.
    assert_eq!(pod.alternatives().len(), 1);
    assert_eq!(pod.alternatives()[0].len(), 2);
    assert_eq!(
        pod.accelerator_request(ResourceName::NvidiaGpu)
            .unwrap()
            .count,
        2
    );
    let c = &pod.containers[0];
    assert_eq!(c.request(ResourceName::Cpu).unwrap().quantity, "500m");
    assert_eq!(
        at(&c.request(ResourceName::NvidiaGpu).unwrap().source),
        (33, 24)
    );
}

#[test]
fn daemonset_neuron_and_init_containers() {
    let m = manifests("daemonset.yaml");
    let pod = &m.pods[0];
    assert_eq!(pod.object.kind, "DaemonSet");
    assert_eq!(pod.containers.len(), 2);
    assert!(pod.containers[0].init && !pod.containers[1].init);
    assert_eq!(pod.containers[0].name.as_deref(), Some("warmup"));
    let neuron = pod.accelerator_request(ResourceName::AwsNeuron).unwrap();
    assert_eq!(
        (
            neuron.count,
            neuron.sources.iter().map(at).collect::<Vec<_>>()
        ),
        (1, vec![(21, 15)])
    );
    let cores = pod
        .accelerator_request(ResourceName::AwsNeuronCore)
        .unwrap();
    assert_eq!(
        (
            cores.count,
            cores.sources.iter().map(at).collect::<Vec<_>>()
        ),
        (2, vec![(27, 15)])
    );
    // `operator: Exists` without a key tolerates every taint.
    let t = &pod.tolerations[0];
    assert_eq!(
        (t.key.as_deref(), t.operator),
        (None, TolerationOperator::Exists)
    );
    let any = Taint {
        key: "x".to_string(),
        value: Some("y".to_string()),
        effect: TaintEffect::NoExecute,
        source: src(),
    };
    assert!(pod.tolerates(&any));
}

#[test]
fn cronjob_pod_template_and_stars_in_strings() {
    let m = manifests("cronjob.yaml");
    let pod = &m.pods[0];
    assert_eq!(pod.object.kind, "CronJob");
    assert_eq!(at(&pod.source), (11, 11));
    assert_eq!(
        pod.node_selector
            .iter()
            .map(|e| (e.key.as_str(), at(&e.source)))
            .collect::<Vec<_>>(),
        [
            ("node.kubernetes.io/instance-type", (13, 13)),
            ("kubernetes.io/arch", (14, 13))
        ]
    );
    assert_eq!(
        pod.accelerator_request(ResourceName::NvidiaGpu)
            .unwrap()
            .count,
        8
    );
}

#[test]
fn json_pod() {
    let m = manifests("pod.json");
    let pod = &m.pods[0];
    assert_eq!(pod.object.name.as_deref(), Some("json-pod"));
    assert_eq!(at(&pod.node_selector[0].source), (6, 22));
    let q = pod.containers[0].limit(ResourceName::NvidiaGpu).unwrap();
    assert_eq!((q.count, at(&q.source)), (Some(4), (8, 60)));
}

#[test]
fn neuron_nodepool_every_operator() {
    let m = manifests("nodepool-neuron.yaml");
    let pool = &m.node_pools[0];
    let ops: Vec<(Operator, Option<u32>, (usize, usize))> = pool
        .requirements
        .iter()
        .map(|r| (r.op, r.min_values, at(&r.source)))
        .collect();
    assert_eq!(
        ops,
        [
            (Operator::In, Some(2), (16, 11)),
            (Operator::Gte, None, (20, 11)),
            (Operator::Lte, None, (23, 11)),
            (Operator::DoesNotExist, None, (26, 11)),
            (Operator::NotIn, None, (28, 11)),
            (Operator::Exists, None, (31, 11)),
            (Operator::Lt, None, (33, 11)),
        ]
    );
    assert_eq!(pool.labels.len(), 1);
    assert_eq!(
        (pool.labels[0].key.as_str(), pool.labels[0].value.as_str()),
        ("team", "ml")
    );
    assert_eq!(at(&pool.labels[0].source), (9, 9));
    assert_eq!(
        pool.taints[0].to_string(),
        "aws.amazon.com/neuron=present:NoSchedule"
    );
    assert_eq!(
        pool.startup_taints[0].to_string(),
        "accelprobe.io/unverified:NoSchedule"
    );
    assert_eq!(at(&pool.startup_taints[0].source), (41, 11));
    let c = pool.constraints();
    let count = c.well_known(WellKnown::InstanceAcceleratorCount).unwrap();
    assert_eq!(count.describe(), "from 1 to 16");
    assert_eq!(count.bounds(), (Some(1), Some(16)));
    assert_eq!(
        c.well_known(WellKnown::InstanceFamily).unwrap().min_values,
        Some(2)
    );
    assert_eq!(
        c.well_known(WellKnown::InstanceGpuCount)
            .unwrap()
            .describe(),
        "absent"
    );
    assert_eq!(
        c.get(&LabelKey::Custom("team".to_string()))
            .unwrap()
            .describe(),
        "ml"
    );
    assert!(c.unsatisfiable().is_empty());
    let trn1 = [
        ("karpenter.k8s.aws/instance-family", "trn1"),
        ("karpenter.k8s.aws/instance-accelerator-count", "16"),
        ("topology.kubernetes.io/zone", "us-east-1a"),
        ("karpenter.k8s.aws/instance-memory", "524288"),
        ("team", "ml"),
    ];
    assert!(c.matches(|k| trn1.iter().find(|(key, _)| k.is(key)).map(|(_, v)| *v)));
}

#[test]
fn v1beta1_nodepool_warns_and_unknown_kinds_are_skipped() {
    let m = manifests("nodepool-v1beta1.yaml");
    assert_eq!(m.node_pools.len(), 1);
    assert_eq!(m.node_pools[0].api_version, "karpenter.sh/v1beta1");
    let warnings: Vec<(usize, usize, &str)> = m
        .warnings
        .iter()
        .map(|w| (w.at.line, w.at.column, w.message.as_str()))
        .collect();
    assert_eq!(warnings.len(), 2);
    assert_eq!((warnings[0].0, warnings[0].1), (1, 13));
    assert!(warnings[0].2.contains("v1beta1 is deprecated"));
    assert_eq!((warnings[1].0, warnings[1].1), (14, 7));
    assert!(warnings[1].2.starts_with("skipped EC2NodeClass"));
    assert!(m.warnings[1]
        .to_string()
        .contains("nodepool-v1beta1.yaml:14:7: warning: skipped"));
    // A NodePool of another API group is not Karpenter's.
    let other = "apiVersion: example.com/v1\nkind: NodePool\nspec: {}\n";
    let m = parse_manifests(other, "o.yaml").unwrap();
    assert!(m.node_pools.is_empty());
    assert!(m.warnings[0].message.contains("apiVersion example.com/v1"));
}

#[test]
fn multi_document_file() {
    let m = manifests("multi.yaml");
    let pods: Vec<(&str, Option<&str>, (usize, usize))> = m
        .pods
        .iter()
        .map(|p| {
            (
                p.object.kind.as_str(),
                p.object.name.as_deref(),
                at(&p.object.source),
            )
        })
        .collect();
    assert_eq!(
        pods,
        [
            ("Pod", Some("first"), (20, 1)),
            ("StatefulSet", Some("second"), (29, 1)),
            ("ReplicaSet", Some("third"), (40, 1)),
        ]
    );
    assert_eq!(at(&m.pods[1].node_selector[0].source), (37, 9));
    assert_eq!(m.pods[2].alternatives(), vec![Vec::<Requirement>::new()]);
    assert_eq!(m.node_pools.len(), 1);
    assert_eq!(at(&m.node_pools[0].requirements[0].source), (15, 11));
    assert_eq!(m.warnings.len(), 1);
    assert!(m.warnings[0].message.starts_with("skipped Namespace"));
}

#[test]
fn list_items_are_objects() {
    let m = manifests("list.yaml");
    assert_eq!(m.pods.len(), 1);
    assert_eq!(m.pods[0].object.name.as_deref(), Some("listed"));
    assert_eq!(at(&m.pods[0].node_selector[0].source), (8, 22));
    assert_eq!((m.warnings[0].at.line, m.warnings[0].at.column), (11, 11));
}

#[test]
fn affinity_terms_are_alternatives() {
    let text = r#"
apiVersion: v1
kind: Pod
spec:
  nodeSelector: {kubernetes.io/arch: amd64}
  affinity:
    nodeAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        nodeSelectorTerms:
          - matchExpressions:
              - {key: eks.amazonaws.com/instance-gpu-name, operator: In, values: [l40s]}
              - {key: eks.amazonaws.com/instance-gpu-count, operator: Lt, values: ["4"]}
          - matchExpressions:
              - {key: karpenter.k8s.aws/instance-gpu-name, operator: In, values: [h100]}
          - {}
          - matchFields:
              - {key: metadata.name, operator: In, values: [node-1]}
  containers: []
"#;
    let m = parse_manifests(text, "a.yaml").unwrap();
    let pod = &m.pods[0];
    let terms = pod.node_affinity.as_ref().unwrap();
    assert_eq!(terms.len(), 4);
    assert!(terms[2].matches_nothing());
    assert!(terms[3].match_fields && !terms[3].matches_nothing());
    let alternatives: Vec<Vec<String>> = pod
        .alternatives()
        .iter()
        .map(|a| a.iter().map(|r| r.to_string()).collect())
        .collect();
    assert_eq!(
        alternatives,
        [
            vec![
                "kubernetes.io/arch In [amd64]",
                "eks.amazonaws.com/instance-gpu-name In [l40s]",
                "eks.amazonaws.com/instance-gpu-count Lt 4",
            ],
            vec![
                "kubernetes.io/arch In [amd64]",
                "karpenter.k8s.aws/instance-gpu-name In [h100]"
            ],
            vec!["kubernetes.io/arch In [amd64]"],
        ]
    );
    assert_eq!(at(&terms[1].requirements[0].source), (14, 17));
    // Only empty terms: no node can run the pod.
    let empty_only = PodSpec {
        node_affinity: Some(vec![terms[2].clone()]),
        ..pod.clone()
    };
    assert!(empty_only.alternatives().is_empty());
}

#[test]
fn sidecars_and_init_containers_follow_the_scheduler() {
    let text = r#"
apiVersion: v1
kind: Pod
spec:
  initContainers:
    - {name: big-init, resources: {limits: {nvidia.com/gpu: 4}}}
    - {name: sidecar, restartPolicy: Always, resources: {limits: {nvidia.com/gpu: 1}}}
  containers:
    - {name: a, resources: {limits: {nvidia.com/gpu: 1}}}
    - {name: b, resources: {limits: {nvidia.com/gpu: 1}}}
"#;
    let m = parse_manifests(text, "s.yaml").unwrap();
    let pod = &m.pods[0];
    assert!(pod.containers[1].sidecar);
    // max(init 4, containers 1 + 1 + sidecar 1) = 4
    let total = pod.accelerator_request(ResourceName::NvidiaGpu).unwrap();
    assert_eq!(total.count, 4);
    assert_eq!(total.sources.iter().map(at).collect::<Vec<_>>(), [(6, 45)]);
    // max(init 2 + nothing started before it, 1 + 1 + 1) = 3
    let smaller = text.replace("nvidia.com/gpu: 4", "nvidia.com/gpu: 2");
    let m = parse_manifests(&smaller, "s.yaml").unwrap();
    let total = m.pods[0]
        .accelerator_request(ResourceName::NvidiaGpu)
        .unwrap();
    assert_eq!((total.count, total.sources.len()), (3, 3));
}

#[test]
fn tolerations_follow_kubernetes() {
    let t = |key: Option<&str>, op, value: Option<&str>, effect| Toleration {
        key: key.map(str::to_string),
        operator: op,
        value: value.map(str::to_string),
        effect,
        source: src(),
    };
    let taint = Taint {
        key: "nvidia.com/gpu".to_string(),
        value: Some("present".to_string()),
        effect: TaintEffect::NoSchedule,
        source: src(),
    };
    use TaintEffect::*;
    use TolerationOperator::*;
    let table = [
        (t(Some("nvidia.com/gpu"), Exists, None, None), true),
        (
            t(Some("nvidia.com/gpu"), Exists, None, Some(NoSchedule)),
            true,
        ),
        (
            t(Some("nvidia.com/gpu"), Exists, None, Some(NoExecute)),
            false,
        ),
        (
            t(Some("nvidia.com/gpu"), Equal, Some("present"), None),
            true,
        ),
        (
            t(Some("nvidia.com/gpu"), Equal, Some("absent"), None),
            false,
        ),
        (t(Some("nvidia.com/gpu"), Equal, None, None), false),
        (t(Some("other"), Exists, None, None), false),
        (t(None, Exists, None, None), true),
        (t(None, Exists, None, Some(PreferNoSchedule)), false),
    ];
    for (tol, want) in table {
        assert_eq!(tol.tolerates(&taint), want, "{tol:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Bad input: one fixture per error class

#[test]
fn invalid_fixtures_name_line_and_column() {
    // (file, error class, line, column, part of the message)
    let table: &[(&str, &str, usize, usize, &str)] = &[
        ("syntax.yaml", "Syntax", 8, 13, "malformed YAML/JSON"),
        ("syntax.json", "Syntax", 6, 5, "did not find expected ',' or '}'"),
        ("duplicate-key.yaml", "Syntax", 6, 5, "duplicated key"),
        ("not-a-mapping.yaml", "WrongType", 1, 1, "the document must be a mapping, found a list"),
        ("values-not-a-list.yaml", "WrongType", 11, 19, "requirements[0].values must be a list, found the string 'g6e'"),
        ("selector-number.yaml", "WrongType", 5, 44, "must be a string, found the number 45776; quote it: \"45776\""),
        ("unknown-operator.yaml", "UnknownOperator", 10, 21, "unknown operator 'GreaterThan'; valid operators are In, NotIn, Exists, DoesNotExist, Gt, Lt, Gte, Lte"),
        ("gte-in-pod.yaml", "UnknownOperator", 10, 27, "unknown operator 'Gte'; valid operators are In, NotIn, Exists, DoesNotExist, Gt, Lt in a node affinity"),
        ("in-without-values.yaml", "InvalidRequirement", 11, 19, "operator In needs at least one value"),
        ("exists-with-values.yaml", "InvalidRequirement", 11, 25, "operator Exists takes no values"),
        ("gt-two-values.yaml", "InvalidRequirement", 11, 19, "operator Gt takes exactly one integer value"),
        ("gt-not-integer.yaml", "InvalidRequirement", 12, 15, "operator Lt needs an integer value, found '40Gi'"),
        ("min-values.yaml", "InvalidRequirement", 12, 22, "minValues is 3 but values lists only 2"),
        ("missing-kind.yaml", "MissingField", 1, 1, "kind is required in a Kubernetes object; add it"),
        ("missing-template-spec.yaml", "MissingField", 8, 5, "spec.template.spec is required in Deployment hollow"),
        ("bad-label-key.yaml", "InvalidValue", 5, 5, "label key prefix 'EKS.amazonaws.com' must be a lower-case DNS subdomain"),
        ("gpu-fraction.yaml", "InvalidValue", 9, 27, "nvidia.com/gpu is counted in whole devices; found '0.5'"),
        ("gpu-request-without-limit.yaml", "InvalidValue", 9, 11, "spec.containers[0].resources.requests.nvidia.com/gpu: a device request needs an equal limit"),
        ("bad-taint-effect.yaml", "InvalidValue", 11, 19, "unknown effect 'NoScheduling'"),
        ("alias.yaml", "Alias", 7, 13, "YAML alias '*selector' is not accepted"),
        ("alias-bomb.yaml", "Alias", 2, 8, "YAML alias '*a' is not accepted"),
        ("deep-flow.yaml", "TooDeep", 1, 72, "nesting deeper than 64 levels"),
        ("deep-block.yaml", "TooDeep", 65, 129, "nesting deeper than 64 levels"),
        ("too-many-documents.yaml", "TooManyDocuments", 1001, 1, "more than 1000 YAML documents"),
        ("not-utf8.yaml", "NotUtf8", 4, 12, "not UTF-8 text (invalid byte 0xe9)"),
        ("utf16.yaml", "NotUtf8", 1, 1, "it is UTF-16"),
        ("two-nodes.json", "NodeCount", 4, 12, "the node list holds 2 nodes; --node-labels needs exactly one"),
    ];
    let dir = fixture("invalid");
    let mut listed: Vec<&str> = table.iter().map(|t| t.0).collect();
    listed.sort();
    let mut present: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    present.sort();
    assert_eq!(
        listed, present,
        "every invalid fixture is in the table, and only those"
    );
    for (file, class, line, column, part) in table {
        let path = dir.join(file);
        let err = if file.contains("node") {
            read_node_labels(&path).unwrap_err()
        } else {
            read_manifests(&path).unwrap_err()
        };
        let text = err.to_string();
        let debug = format!("{err:?}");
        assert!(
            debug.starts_with(class),
            "{file}: expected {class}, got {debug}"
        );
        let p = err
            .position()
            .unwrap_or_else(|| panic!("{file}: no position: {text}"));
        assert_eq!((p.line, p.column), (*line, *column), "{file}: {text}");
        assert!(p.path.ends_with(file));
        assert!(
            text.starts_with(&format!("{}:{line}:{column}: ", path.display())),
            "{text}"
        );
        assert!(text.contains(part), "{file}: {text}");
        assert!(!text.contains('\n'), "{file}: one line: {text}");
    }
}

#[test]
fn wrong_shapes_are_errors_not_panics() {
    // (text, part of the message)
    let table: &[(&str, &str)] = &[
        ("kind: Pod\n", "spec is required in Pod"),
        ("kind: Pod\nspec: 3\n", "spec must be a mapping, found the number 3"),
        ("kind: [Pod]\n", "kind must be a string, found a list"),
        ("kind: Pod\nspec:\n  nodeSelector: [a]\n", "spec.nodeSelector must be a mapping"),
        ("kind: Pod\nspec:\n  nodeSelector: {a: null}\n", "spec.nodeSelector.a must be a string, found nothing"),
        ("kind: Pod\nspec:\n  nodeSelector: {a: true}\n", "quote it: \"true\""),
        ("kind: Pod\nspec:\n  nodeSelector: {1: a}\n", "spec.nodeSelector key must be a string label key"),
        ("kind: Pod\nspec:\n  containers: {a: b}\n", "spec.containers must be a list"),
        ("kind: Pod\nspec:\n  containers: [3]\n", "spec.containers[0] must be a mapping, found the number 3"),
        ("kind: Pod\nspec:\n  containers: [{resources: {limits: {nvidia.com/gpu: [1]}}}]\n", "must be a quantity"),
        ("kind: Pod\nspec:\n  containers: [{resources: {limits: {memory: lots}}}]\n", "'lots' is not a Kubernetes quantity"),
        ("kind: Pod\nspec:\n  containers: [{resources: {requests: {nvidia.com/gpu: 2}, limits: {nvidia.com/gpu: 1}}}]\n", "the request (2) must equal the limit (1)"),
        ("kind: Pod\nspec:\n  tolerations: [{key: a, operator: Equals}]\n", "unknown operator 'Equals'; valid operators are Equal, Exists"),
        ("kind: Pod\nspec:\n  tolerations: [{key: a, operator: Exists, value: b}]\n", "must be empty when operator is Exists"),
        ("kind: Pod\nspec:\n  tolerations: [{value: b}]\n", "must be Exists when key is empty"),
        ("kind: Pod\nspec:\n  tolerations: [{key: a, effect: Never}]\n", "unknown effect 'Never'"),
        ("kind: Pod\nspec:\n  affinity:\n    nodeAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution: {}\n", "nodeSelectorTerms is required"),
        ("kind: Pod\nspec:\n  affinity:\n    nodeAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution: {nodeSelectorTerms: []}\n", "needs at least one term"),
        ("kind: Pod\nspec:\n  affinity: {nodeAffinity: {requiredDuringSchedulingIgnoredDuringExecution: {nodeSelectorTerms: [{matchExpressions: [{operator: In, values: [a]}]}]}}}\n", "matchExpressions[0].key is required"),
        ("kind: Pod\nspec:\n  affinity: {nodeAffinity: {requiredDuringSchedulingIgnoredDuringExecution: {nodeSelectorTerms: [{matchExpressions: [{key: a, values: [a]}]}]}}}\n", "matchExpressions[0].operator is required"),
        ("kind: Pod\nspec:\n  affinity: {nodeAffinity: {requiredDuringSchedulingIgnoredDuringExecution: {nodeSelectorTerms: [{matchExpressions: [{key: a, operator: In, values: [1]}]}]}}}\n", "values[0] must be a string, found the number 1; quote it"),
        ("kind: Pod\nspec:\n  affinity: {nodeAffinity: {requiredDuringSchedulingIgnoredDuringExecution: {nodeSelectorTerms: [{matchExpressions: [{key: a, operator: in, values: [x]}]}]}}}\n", "unknown operator 'in'"),
        ("apiVersion: karpenter.sh/v1\nkind: NodePool\nspec: {template: {spec: {}}}\n", "spec.template.spec.requirements is required"),
        ("apiVersion: karpenter.sh/v1\nkind: NodePool\nspec: {template: {spec: {requirements: [{key: a, operator: In, values: [b], minValues: two}]}}}\n", "minValues must be an integer from 1 to 50"),
        ("apiVersion: karpenter.sh/v1\nkind: NodePool\nspec: {template: {spec: {requirements: [], taints: [{key: a}]}}}\n", "taints[0].effect is required"),
        ("apiVersion: karpenter.sh/v1\nkind: NodePool\nspec: {template: {spec: {requirements: [], taints: [{key: a, value: 'b c', effect: NoSchedule}]}}}\n", "label value 'b c'"),
        ("apiVersion: apps/v1\nkind: Deployment\nspec: {template: null}\n", "spec.template is required in Deployment"),
        ("apiVersion: batch/v1\nkind: CronJob\nspec: {jobTemplate: {spec: {}}}\n", "spec.jobTemplate.spec.template is required in CronJob"),
        ("\"just a string\"\n", "must be a mapping"),
        ("kind: Pod\nspec: {}\n---\n{", "malformed YAML/JSON"),
        ("kind: Pod\nspec: !!int abc\n", "spec must be a mapping, found '!!int abc', which does not fit its tag"),
        ("\t- a\n", "the document must be a mapping, found a list"),
    ];
    for (text, part) in table {
        match parse_manifests(text, "t.yaml") {
            Ok(m) => panic!("{text:?}: accepted: {m:?}"),
            Err(e) => {
                let msg = e.to_string();
                assert!(msg.contains(part), "{text:?}: {msg}");
                assert!(msg.starts_with("t.yaml:"), "{msg}");
                assert!(!msg.contains('\n'), "{msg}");
            }
        }
    }
}

#[test]
fn empty_and_comment_only_files_are_warned_about() {
    for text in ["", "# nothing\n", "---\n---\n", "---\n...\n", "\u{feff}"] {
        let m = parse_manifests(text, "e.yaml").unwrap_or_else(|e| panic!("{text:?}: {e}"));
        assert!(m.pods.is_empty() && m.node_pools.is_empty());
        assert_eq!(m.warnings.len(), 1, "{text:?}");
        assert!(m.warnings[0].message.contains("no Kubernetes object"));
    }
}

#[test]
fn unreadable_file_is_an_io_error() {
    let e = read_manifests(&fixture("does-not-exist.yaml")).unwrap_err();
    assert!(matches!(e, K8sError::Io { .. }), "{e}");
    assert!(e
        .to_string()
        .contains("does-not-exist.yaml: cannot read the file"));
    assert!(e.position().is_none());
}

// ---------------------------------------------------------------------------------------------
// Node labels

#[test]
fn node_labels_in_three_forms() {
    // A hand-written mapping (numbers may be unquoted).
    let m = read_node_labels(&fixture("labels-map.yaml")).unwrap();
    assert_eq!(m.node_name, None);
    assert_eq!(m.labels.len(), 5);
    let gpu = m.get("eks.amazonaws.com/instance-gpu-name").unwrap();
    assert_eq!(
        (gpu.key.as_str(), gpu.value.as_str()),
        ("karpenter.k8s.aws/instance-gpu-name", "l40s")
    );
    assert_eq!(
        gpu.source,
        Source::Label {
            key: "karpenter.k8s.aws/instance-gpu-name".to_string()
        }
    );
    assert_eq!((gpu.at.line, gpu.at.column), (3, 1));
    assert_eq!(
        m.well_known(WellKnown::InstanceGpuCount).unwrap().value,
        "1"
    );
    assert_eq!(
        m.well_known(WellKnown::InstanceGpuMemory).unwrap().value,
        "45776"
    );
    assert_eq!(
        m.lookup(&LabelKey::WellKnown(WellKnown::InstanceType)),
        Some("g6e.2xlarge")
    );

    // A Node object as kubectl prints it.
    let n = read_node_labels(&fixture("node.json")).unwrap();
    assert_eq!(n.node_name.as_deref(), Some("i-0123456789abcdef0"));
    assert_eq!(n.labels.len(), 7);
    assert_eq!(
        n.well_known(WellKnown::Arch).unwrap().key,
        "beta.kubernetes.io/arch"
    );
    assert_eq!(
        n.get("kubernetes.io/arch").unwrap().key,
        "kubernetes.io/arch"
    );
    assert_eq!(
        n.get("karpenter.k8s.aws/instance-gpu-count").unwrap().value,
        "4"
    );
    assert_eq!(
        n.lookup(&LabelKey::Custom("example.com/x".to_string())),
        None
    );
    let g = n.get("node.kubernetes.io/instance-type").unwrap();
    assert_eq!((g.at.line, g.at.column), (15, 13));
    assert!(n.warnings.is_empty());

    // A node list with one item.
    let l = read_node_labels(&fixture("nodelist.json")).unwrap();
    assert_eq!(l.node_name.as_deref(), Some("ip-10-0-1-23.ec2.internal"));
    assert_eq!(
        l.well_known(WellKnown::InstanceGpuName).unwrap().value,
        "a10g"
    );

    // The seed scenario against node labels.
    let pod = &manifests("seed-pod.yaml").pods[0];
    let c = &pod.constraint_alternatives()[0];
    assert!(c.matches(|k| n.lookup(k)));
    assert_eq!(c.mismatches(|k| l.lookup(k)).len(), 2);
}

#[test]
fn node_label_errors_and_warnings() {
    let table: &[(&str, &str, &str)] = &[
        ("", "K", "found no YAML or JSON document"),
        ("a: b\n---\nc: d\n", "K", "holds 2 documents"),
        ("[a, b]\n", "K", "must be a mapping of label keys to values"),
        (
            "a: [b]\n",
            "K",
            "a must be a string label value, found a list",
        ),
        ("a: null\n", "K", "found nothing"),
        ("A B: c\n", "K", "label key name 'A B'"),
        ("a: b c\n", "K", "label value 'b c'"),
        (
            "apiVersion: v1\nkind: Pod\nmetadata: {}\n",
            "K",
            "found kind Pod",
        ),
        (
            "apiVersion: v1\nkind: List\nitems: []\n",
            "K",
            "holds 0 nodes",
        ),
        (
            "apiVersion: v1\nkind: List\nitems: [{apiVersion: v1, kind: Pod, metadata: {}}]\n",
            "K",
            "items[0].kind must be Node",
        ),
        (
            "apiVersion: v1\nkind: Node\n",
            "K",
            "metadata is required in a Node",
        ),
        (
            "apiVersion: v1\nkind: Node\nmetadata: {labels: [a]}\n",
            "K",
            "metadata.labels must be a mapping",
        ),
        ("a: &x b\nc: *x\n", "K", "YAML alias '*x'"),
    ];
    for (text, _, part) in table {
        let e = parse_node_labels(text, "n.json").unwrap_err().to_string();
        assert!(e.contains(part), "{text:?}: {e}");
        assert!(e.starts_with("n.json:"), "{e}");
    }
    // A Node without labels, and a plain map that only looks like an object.
    let n = parse_node_labels("apiVersion: v1\nkind: Node\nmetadata: {name: x}\n", "n").unwrap();
    assert!(n.labels.is_empty());
    let m = parse_node_labels("kind: special\n", "n").unwrap();
    assert_eq!(m.labels[0].value, "special");
    // Two spellings of one label that disagree: a warning, the first wins.
    let text =
        "eks.amazonaws.com/instance-gpu-name: l40s\nkarpenter.k8s.aws/instance-gpu-name: l4\n";
    let m = parse_node_labels(text, "n.yaml").unwrap();
    assert_eq!(
        m.well_known(WellKnown::InstanceGpuName).unwrap().value,
        "l40s"
    );
    assert_eq!(m.warnings.len(), 1);
    assert_eq!((m.warnings[0].at.line, m.warnings[0].at.column), (2, 1));
    assert!(m.warnings[0].message.contains("disagrees"));
}

// ---------------------------------------------------------------------------------------------
// Limits

fn pod_with_selector(extra: &str) -> String {
    format!("apiVersion: v1\nkind: Pod\nspec:\n  nodeSelector: {{a: b}}\n{extra}")
}

#[test]
fn size_limit_is_checked_before_parsing() {
    let big = "#".repeat(MAX_FILE_BYTES + 1);
    let e = parse_manifests(&big, "big.yaml").unwrap_err();
    assert_eq!(
        e,
        K8sError::TooLarge {
            path: "big.yaml".to_string(),
            size: MAX_FILE_BYTES as u64 + 1,
            limit: MAX_FILE_BYTES
        }
    );
    assert!(e.to_string().contains("more than the 4194304-byte limit"));
    let just = "#".repeat(MAX_FILE_BYTES);
    assert!(parse_manifests(&just, "just.yaml").is_ok());
    // read_* refuses from the metadata, and stops reading at the limit.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.yaml");
    std::fs::write(&path, &big).unwrap();
    assert!(matches!(
        read_manifests(&path).unwrap_err(),
        K8sError::TooLarge { .. }
    ));
    assert!(matches!(
        read_node_labels(&path).unwrap_err(),
        K8sError::TooLarge { .. }
    ));
}

#[test]
fn document_limit() {
    let ok = pod_with_selector("") + &"---\n".repeat(MAX_DOCUMENTS - 1);
    assert!(parse_manifests(&ok, "ok.yaml").is_ok());
    let too_many = pod_with_selector("") + &"---\n".repeat(MAX_DOCUMENTS);
    let e = parse_manifests(&too_many, "d.yaml").unwrap_err();
    assert!(matches!(e, K8sError::TooManyDocuments { .. }), "{e}");
    assert_eq!(e.position().unwrap().line, 5 + MAX_DOCUMENTS - 1);
    // Markers only count at column 0 followed by a blank.
    let not_markers = format!("a: |\n{}", " ---\n".repeat(2000)) + &"---x: 1\n".repeat(0);
    assert_eq!(yaml::count_documents(&not_markers, "x").unwrap(), 1);
    assert_eq!(
        yaml::count_documents("---\na\n--- b\n---\t\n----\n", "x").unwrap(),
        3
    );
}

#[test]
fn depth_limit_is_exact_after_parsing() {
    let nest = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    assert!(parse_node_labels(&format!("a: {}\n", nest(10)), "x").is_err()); // not a string, but parsed
    for (depth, ok) in [(63, true), (64, true), (65, false), (255, false)] {
        let text = nest(depth);
        let r = parse_manifests(&text, "deep.yaml");
        match (r, ok) {
            (Ok(_), true) => panic!("a bare list is not an object"),
            (Err(K8sError::WrongType { .. }), true) => {}
            (Err(K8sError::TooDeep { at, .. }), false) => assert_eq!((at.line, at.column), (1, 65)),
            (other, _) => panic!("depth {depth}: {other:?}"),
        }
    }
    // Flow nesting past saphyr's 255 levels is a syntax error, not a crash.
    assert!(matches!(
        parse_manifests(&nest(300), "x").unwrap_err(),
        K8sError::Syntax { .. }
    ));
    // Implicit single-pair mappings inside flow sequences count too.
    let pairs = format!("{}x{}", "[a: ".repeat(40), "]".repeat(40));
    assert!(matches!(
        parse_manifests(&pairs, "x").unwrap_err(),
        K8sError::TooDeep { .. }
    ));
    // Deep block nesting (by indentation and compact sequences), within the limit, parses.
    let mut block = String::new();
    for i in 0..60 {
        block += &format!("{}k{i}:\n", " ".repeat(i));
    }
    block += &format!("{}- - - - x\n", " ".repeat(60));
    assert!(matches!(
        parse_manifests(&block, "x").unwrap_err(),
        K8sError::MissingField { .. }
    ));
    let compact = format!("{}x\n", "- ".repeat(64));
    assert!(matches!(
        parse_manifests(&compact, "x").unwrap_err(),
        K8sError::WrongType { .. }
    ));
    let compact = format!("{}x\n", "- ".repeat(65));
    assert!(matches!(
        parse_manifests(&compact, "x").unwrap_err(),
        K8sError::TooDeep { .. }
    ));
}

#[test]
fn pathological_nesting_is_refused_before_parsing() {
    // One line that could open 100,000 block collections: saphyr's recursive loader would
    // overflow any stack; the line model refuses it first.
    let compact = format!("{}x\n", "- ".repeat(100_000));
    let e = parse_manifests(&compact, "bomb.yaml").unwrap_err();
    assert!(matches!(e, K8sError::TooDeep { .. }), "{e}");
    assert!(e.to_string().contains("refused before parsing"), "{e}");
    assert_eq!(
        (e.position().unwrap().line, e.position().unwrap().column),
        (1, 1)
    );
    // Deep indentation over many lines, within 4 MiB.
    let mut stairs = String::new();
    for i in 0..2800 {
        stairs += &" ".repeat(i);
        stairs += "k:\n";
    }
    let e = parse_manifests(&stairs, "stairs.yaml").unwrap_err();
    assert!(matches!(e, K8sError::TooDeep { .. }), "{e}");
    // The same with lone carriage returns as line breaks.
    let e = parse_manifests(&stairs.replace('\n', "\r"), "cr.yaml").unwrap_err();
    assert!(matches!(e, K8sError::TooDeep { .. }), "{e}");
    // Many `key: value` pairs on one line are not nesting: one-line JSON with spaces parses.
    let line = "a: ".repeat(5000);
    assert!(matches!(
        parse_manifests(&line, "x").unwrap_err(),
        K8sError::Syntax { .. }
    ));
    let pairs: Vec<String> = (0..20_000).map(|i| format!("\"k{i}\": \"v\"")).collect();
    let json = format!("{{\"a\": {{{}}}}}", pairs.join(", "));
    assert_eq!(yaml::block_levels(&json, "x").unwrap(), 1);
    let labels = parse_node_labels(&format!("{{{}}}", pairs.join(", ")), "one-line.json").unwrap();
    assert_eq!(labels.labels.len(), 20_000);
}

#[test]
fn block_model_bounds_the_real_depth() {
    // Every construct that opens block collections, at many indentations: the model's bound is
    // never below the depth saphyr builds.
    let snippets = [
        "a:\n  b:\n    c: 1\n",
        "- - - a\n",
        "- a: 1\n  b:\n  - c\n  - d: [1, {e: f}]\n",
        "a:\n- b\n- c:\n  - d\n",
        "? a\n: b\n",
        "a: |\n    text\n  b: 1\n",
        "a: \"x\n  y\"\nb:\n  c: 1\n",
        "a: plain\n  continued\nb:\n  c:\n    d: 1\n",
        "# c\n  # deep comment\na:\n      # x\n  b: {c: [d]}\n",
        "a:\n  - b:\n      - c:\n          - d\n",
        "--- |\n  x\n--- \n- a\n",
    ];
    for s in snippets {
        let bound = yaml::block_levels(s, "x").unwrap();
        let docs = match <saphyr::MarkedYaml as saphyr::LoadableYamlNode>::load_from_str(s) {
            Ok(d) => d,
            Err(_) => continue,
        };
        let depth = docs.iter().map(tree_depth).max().unwrap_or(0);
        let flow = s.bytes().filter(|b| matches!(b, b'[' | b'{')).count();
        assert!(
            depth <= 2 * bound + 2 * flow,
            "{s:?}: depth {depth}, bound {bound}"
        );
    }
}

fn tree_depth(n: &saphyr::MarkedYaml<'_>) -> usize {
    match &n.data {
        saphyr::YamlData::Sequence(s) => 1 + s.iter().map(tree_depth).max().unwrap_or(0),
        saphyr::YamlData::Mapping(m) => {
            1 + m
                .iter()
                .map(|(k, v)| tree_depth(k).max(tree_depth(v)))
                .max()
                .unwrap_or(0)
        }
        saphyr::YamlData::Tagged(_, inner) => tree_depth(inner),
        _ => 0,
    }
}

#[test]
fn aliases_are_found_where_yaml_has_them() {
    // (text, alias found at (line, column))
    let found: &[(&str, (usize, usize))] = &[
        ("a: &x 1\nb: *x\n", (2, 4)),
        ("a: [1, *x]\n", (1, 8)),
        ("a: {b: *x}\n", (1, 8)),
        ("a: {\"b\":*x}\n", (1, 9)),
        ("- *x\n", (1, 3)),
        ("*x : 1\n", (1, 1)),
        ("a:\n  - b\n  - *x\n", (3, 5)),
        ("? *x\n: 1\n", (1, 3)),
        ("a: !!str *x\n", (1, 10)),
        ("--- *x\n", (1, 5)),
        ("a: [\n  1,\n  *x\n]\n", (3, 3)),
        ("a: |\n  text\nb: *x\n", (3, 4)),
        ("a: \"multi\n  line *x\"\n", (2, 8)),
        ("schedule: */5 * * * *\n", (1, 11)),
    ];
    for (text, (line, column)) in found {
        match yaml::find_alias(text, "x") {
            Err(K8sError::Alias { at, .. }) => {
                assert_eq!((at.line, at.column), (*line, *column), "{text:?}")
            }
            other => panic!("{text:?}: {other:?}"),
        }
    }
    // Stars that are text.
    let text_only = [
        "schedule: \"*/5 * * * *\"\n",
        "schedule: '*/5 * * * *'\n",
        "s: 'it''s *'\n",
        "s: \"a\\\" *\"\n",
        "command: rm -rf *.log\n",
        "args: [\"sh\", \"-c\", \"ls * && echo *\"]\n",
        "args: [ls *.txt, a*b]\n",
        "# *comment\na: b # *x\n",
        "script: |\n  for f in *; do\n    echo $f *\n  done\nnext: 1\n",
        "script: >-\n  * starred\n\n  * again\n",
        "- |\n  *x\n- >\n   *y\n",
        "a: b*c\n",
        "\"*key\": 1\n",
        "a: &anchor 1\n",
    ];
    for text in text_only {
        assert_eq!(yaml::find_alias(text, "x"), Ok(()), "{text:?}");
        assert!(
            !matches!(parse_manifests(text, "x"), Err(K8sError::Alias { .. })),
            "{text:?}"
        );
    }
}

#[test]
fn the_alias_oracle_detects_real_aliases() {
    // The property test below relies on saphyr refusing aliases to unknown anchors.
    let load = <saphyr::MarkedYaml as saphyr::LoadableYamlNode>::load_from_str;
    for text in [
        "a: &zz 1\nb: *zz\n",
        "- &zz [1]\n- [*zz]\n",
        "&zz a: {b: *zz}\n",
    ] {
        assert!(load(text).is_ok(), "{text:?}");
        assert!(load(&text.replace("&zz", "&yy")).is_err(), "{text:?}");
    }
}

#[test]
fn billion_laughs_is_refused_before_expansion() {
    // Nine levels of nine-fold aliases would expand to 387 million nodes.
    let e = read_manifests(&fixture("invalid/alias-bomb.yaml")).unwrap_err();
    assert!(matches!(e, K8sError::Alias { .. }));
    // A merge key (`<<: *base`) is an alias too.
    let merge = "base: &base {a: 1}\nderived:\n  <<: *base\n";
    assert!(matches!(
        parse_manifests(merge, "m.yaml").unwrap_err(),
        K8sError::Alias { .. }
    ));
}

// ---------------------------------------------------------------------------------------------
// No panics

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    fn yamlish() -> impl Strategy<Value = String> {
        let token = prop_oneof![
            Just("\n".to_string()),
            Just("  ".to_string()),
            Just("- ".to_string()),
            Just(": ".to_string()),
            Just("kind: Pod\n".to_string()),
            Just("kind: NodePool\napiVersion: karpenter.sh/v1\n".to_string()),
            Just("spec:\n".to_string()),
            Just("template:\n".to_string()),
            Just("requirements:\n".to_string()),
            Just("nodeSelector:\n".to_string()),
            Just("{".to_string()),
            Just("}".to_string()),
            Just("[".to_string()),
            Just("]".to_string()),
            Just("---\n".to_string()),
            Just("\"".to_string()),
            Just("'".to_string()),
            Just("|\n".to_string()),
            Just("&a ".to_string()),
            Just("*a".to_string()),
            Just("# c\n".to_string()),
            Just("\t".to_string()),
            Just("\r".to_string()),
            Just("? ".to_string()),
            Just("!!str ".to_string()),
            "[a-z0-9./-]{1,8}",
        ];
        prop::collection::vec(token, 0..60).prop_map(|v| v.concat())
    }

    /// YAML-like text rich in anchors, aliases, quotes, block scalars and flow collections.
    fn aliasy() -> impl Strategy<Value = String> {
        let token = prop_oneof![
            Just("\n".to_string()),
            Just("  ".to_string()),
            Just(" ".to_string()),
            Just("- ".to_string()),
            Just(": ".to_string()),
            Just("a: ".to_string()),
            Just("&zz ".to_string()),
            Just("*zz".to_string()),
            Just(" *zz".to_string()),
            Just("[".to_string()),
            Just("]".to_string()),
            Just("{".to_string()),
            Just("}".to_string()),
            Just(", ".to_string()),
            Just("\"".to_string()),
            Just("'".to_string()),
            Just("\\".to_string()),
            Just("|\n".to_string()),
            Just(">-\n".to_string()),
            Just("# ".to_string()),
            Just("? ".to_string()),
            Just("!t ".to_string()),
            Just("---\n".to_string()),
            Just("\t".to_string()),
            "[a-c]{1,3}",
        ];
        prop::collection::vec(token, 0..40).prop_map(|v| v.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(800))]

        #[test]
        fn manifest_parser_takes_any_text(s in ".{0,300}") {
            let _ = parse_manifests(&s, "f.yaml");
            let _ = parse_node_labels(&s, "f.yaml");
        }

        #[test]
        fn manifest_parser_takes_yamlish_text(s in yamlish()) {
            if let Err(e) = parse_manifests(&s, "f.yaml") {
                let msg = e.to_string();
                prop_assert!(!msg.contains('\n'));
                prop_assert!(msg.starts_with("f.yaml"));
            }
            let _ = parse_node_labels(&s, "f.yaml");
        }

        #[test]
        fn every_real_alias_is_found(s in aliasy()) {
            // Oracle: saphyr refuses an alias to an unknown anchor. If the scan finds no alias
            // and the text parses, renaming the anchor must leave it parsing: no `*zz` token
            // was real.
            if yaml::find_alias(&s, "x").is_ok()
                && <saphyr::MarkedYaml as saphyr::LoadableYamlNode>::load_from_str(&s).is_ok()
            {
                let renamed = s.replace("&zz", "&yy");
                prop_assert!(
                    <saphyr::MarkedYaml as saphyr::LoadableYamlNode>::load_from_str(&renamed).is_ok(),
                    "an alias was missed in {:?}", s
                );
            }
        }

        #[test]
        fn the_block_model_bounds_saphyr(s in yamlish()) {
            let Ok(bound) = yaml::block_levels(&s, "x") else { return Ok(()) };
            if bound > 40 { return Ok(()) }
            let flow = s.bytes().filter(|b| matches!(b, b'[' | b'{')).count();
            if flow > 40 { return Ok(()) }
            if let Ok(docs) = <saphyr::MarkedYaml as saphyr::LoadableYamlNode>::load_from_str(&s) {
                let depth = docs.iter().map(tree_depth).max().unwrap_or(0);
                prop_assert!(depth <= 2 * bound + 2 * flow, "depth {} bound {}", depth, bound);
            }
        }

    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn fixtures_cut_anywhere_do_not_panic(cut in 0usize..2000, junk in ".{0,4}") {
            for name in ["seed-pod.yaml", "seed-nodepool-gpu.yaml", "nodepool-neuron.yaml", "node.json"] {
                let text = std::fs::read_to_string(fixture(name)).unwrap();
                let mut at = cut.min(text.len());
                while !text.is_char_boundary(at) { at -= 1; }
                let mutated = format!("{}{}{}", &text[..at], junk, &text[at..]);
                let _ = parse_manifests(&text[..at], "f.yaml");
                let _ = parse_manifests(&mutated, "f.yaml");
                let _ = parse_node_labels(&mutated, "f.json");
            }
        }
    }
}

#[test]
fn requirement_serializes_as_kubernetes_writes_it() {
    let pool = &manifests("nodepool-neuron.yaml").node_pools[0];
    let json = serde_json::to_value(&pool.requirements[0]).unwrap();
    assert_eq!(json["key"], "karpenter.k8s.aws/instance-family");
    assert_eq!(json["operator"], "In");
    assert_eq!(json["values"], serde_json::json!(["inf2", "trn1", "trn2"]));
    assert_eq!(json["minValues"], 2);
    assert_eq!(json["source"]["kind"], "file");
    assert_eq!(json["source"]["line"], 16);
    let back: Requirement = serde_json::from_value(json).unwrap();
    assert_eq!(&back, &pool.requirements[0]);
    let exists = serde_json::to_value(&pool.requirements[5]).unwrap();
    assert!(exists.get("values").is_none() && exists.get("minValues").is_none());
}
