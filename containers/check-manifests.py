#!/usr/bin/env python3
"""Validate Kubernetes manifests the way a strict `kubectl apply --validate=strict` would,
without a cluster:

- every file parses as YAML (all documents);
- built-in kinds validate against the Kubernetes OpenAPI schemas of the PyPI package
  `kubernetes-validate`, rejecting unknown fields;
- karpenter.sh/v1 NodePools validate against the CRD schema given with --crd, rejecting
  unknown fields;
- a kustomization.yaml names only resources that exist.

Usage: check-manifests.py --crd CRD.yaml PATH...   (files, or directories searched for *.yaml)
Prints one line per document; exit 0 when all pass, 1 otherwise, 2 on bad usage.
"""

import argparse
import copy
import pathlib
import sys

import jsonschema
import kubernetes_validate
import yaml

K8S_VERSION = "1.33.0"


def strict(schema):
    """Reject properties the schema does not name (what --validate=strict does)."""
    schema = copy.deepcopy(schema)

    def walk(node):
        if isinstance(node, dict):
            if node.get("type") == "object" and "properties" in node:
                if "additionalProperties" not in node and not node.get(
                    "x-kubernetes-preserve-unknown-fields"
                ):
                    node["additionalProperties"] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return schema


def nodepool_schema(crd_path):
    with open(crd_path, encoding="utf-8") as f:
        crd = yaml.safe_load(f)
    for version in crd["spec"]["versions"]:
        if version["name"] == "v1":
            return strict(version["schema"]["openAPIV3Schema"])
    raise SystemExit(f"{crd_path}: no v1 version in the CRD")


def files(paths):
    for p in map(pathlib.Path, paths):
        if p.is_dir():
            yield from sorted(p.rglob("*.yaml"))
        else:
            yield p


def check_kustomization(path, doc):
    problems = []
    for entry in doc.get("resources", []) or []:
        target = path.parent / entry
        if target.is_dir():
            if not (target / "kustomization.yaml").exists():
                problems.append(f"resource {entry}: directory without kustomization.yaml")
        elif not target.exists():
            problems.append(f"resource {entry}: no such file")
    return problems


def check(path, index, doc, nodepool):
    kind = doc.get("kind")
    api = doc.get("apiVersion", "")
    name = (doc.get("metadata") or {}).get("name", "")
    where = f"{path} #{index} {kind}/{name}"
    if kind == "Kustomization":
        problems = check_kustomization(path, doc)
    elif kind == "NodePool" and api == "karpenter.sh/v1":
        validator = jsonschema.Draft7Validator(nodepool)
        problems = [
            f"{'.'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
            for e in validator.iter_errors(doc)
        ]
    elif api.startswith("karpenter.sh/"):
        problems = [f"apiVersion {api}: only karpenter.sh/v1 NodePools are checked"]
    else:
        try:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
            problems = []
        except kubernetes_validate.ValidationError as e:
            path_text = ".".join(map(str, e.path)) or "(root)"
            problems = [f"{path_text}: {e.message}"]
        except kubernetes_validate.SchemaNotFoundError:
            problems = [f"no Kubernetes {K8S_VERSION} schema for {api} {kind}"]
    for p in problems:
        print(f"FAIL {where}: {p}")
    if not problems:
        print(f"ok   {where}")
    return not problems


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crd", required=True, help="the karpenter.sh NodePool CRD")
    parser.add_argument("paths", nargs="+")
    args = parser.parse_args()
    nodepool = nodepool_schema(args.crd)
    ok = True
    seen = 0
    for path in files(args.paths):
        try:
            with open(path, encoding="utf-8") as f:
                docs = [d for d in yaml.safe_load_all(f) if d is not None]
        except (OSError, yaml.YAMLError) as e:
            print(f"FAIL {path}: does not parse: {str(e).splitlines()[0]}")
            ok = False
            continue
        for i, doc in enumerate(docs):
            seen += 1
            if not isinstance(doc, dict):
                print(f"FAIL {path} #{i}: not a mapping")
                ok = False
                continue
            ok &= check(path, i, doc, nodepool)
    if seen == 0:
        print("FAIL no manifests found")
        return 1
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
