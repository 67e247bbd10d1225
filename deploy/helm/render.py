#!/usr/bin/env python3
"""Lints and renders the chart with Helm's own engine (helm-python-sdk, no
helm binary needed) and prints the manifests as one YAML stream.

    render.py CHART [-f VALUES.yaml]... [--name RELEASE] [--namespace NS]

Exits non-zero on a lint error or warning (`helm lint --strict`), a value
values.schema.json rejects, or a template that fails. `bash .ci/test-deps`
installs helm-python-sdk into the test venv; deploy/kubernetes/ is this
script's output (see deploy/kubernetes/README.md).
"""
import argparse
import sys

import helm_python as helm


def merge(base, override):
    """Later -f files win, key by key, as with `helm template -f a -f b`."""
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merge(base[key], value)
        else:
            base[key] = value
    return base


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("chart")
    parser.add_argument("-f", "--values", action="append", default=[])
    parser.add_argument("--name", default="bitbucket-catalogd")
    parser.add_argument("--namespace", default="default")
    args = parser.parse_args()

    values = {}
    for path in args.values:
        with open(path, encoding="utf-8") as file:
            merge(values, helm.values_from_yaml(file.read()) or {})

    report = helm.lint(args.chart, values, strict=True, namespace=args.namespace)
    findings = [m for m in report.get("messages") or [] if m.get("severity", 0) >= 2]
    if findings or report.get("errors"):
        for finding in findings:
            print(f"lint: {finding.get('path')}: {finding.get('error')}", file=sys.stderr)
        for error in report.get("errors") or []:
            print(f"lint: {error}", file=sys.stderr)
        return 1

    with helm.Chart.load(args.chart) as chart:
        chart.validate_schema(values)
        manifests = chart.render(values, name=args.name, namespace=args.namespace, is_install=True)
    for path in sorted(manifests):
        text = manifests[path].strip()
        if path.endswith("NOTES.txt") or not text:
            continue
        print(f"---\n# Source: {path}\n{text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
