"""The alerts, dashboards and scrape config agree between compose and the Helm chart.

- `promtool test rules` runs deploy/prometheus/alerts_test.yml (a NATS outage, a target down or
  missing, ...), and every alert has a case where it fires;
- the chart's PrometheusRule carries exactly the rules of deploy/prometheus/alerts.yml, and its
  dashboard ConfigMaps exactly the dashboards of deploy/grafana/dashboards;
- every dashboard picks its Prometheus through a `datasource` variable;
- the ServiceMonitor scrapes OpenMemory's processes on their `ops` port and never a store, and
  gives them the `job` and `component` labels compose's scrape config gives and the alerts select.
"""

from __future__ import annotations

import functools
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

yaml = pytest.importorskip("yaml", reason="PyYAML is not installed: uv sync --group deploy")

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
ALERTS = PROMETHEUS / "alerts.yml"
ALERTS_TEST = PROMETHEUS / "alerts_test.yml"
DASHBOARDS = ROOT / "deploy" / "grafana" / "dashboards"
CHART = ROOT / "deploy" / "helm" / "openmemory"
DISTRIBUTED: dict[str, Any] = {
    "mode": "distributed",
    "secrets": {"neo4jPassword": "test-only"},
    "serviceMonitor": {"enabled": True},
}
SINGLE: dict[str, Any] = {"serviceMonitor": {"enabled": True}}
COMPONENTS = {"gateway", "ingest", "search", "admin"}


# --- Prometheus rules ---------------------------------------------------------------------------


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.skip("promtool is not on PATH: apt-get install prometheus, or get it from prometheus.io")
    return found


def rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]


def test_promtool_accepts_the_rules() -> None:
    done = subprocess.run([promtool(), "check", "rules", str(ALERTS)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_unit_tests_pass() -> None:
    done = subprocess.run(
        [promtool(), "test", "rules", ALERTS_TEST.name], cwd=PROMETHEUS, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_has_a_case_where_it_fires() -> None:
    cases = yaml.safe_load(ALERTS_TEST.read_text())
    firing = {
        check["alertname"]
        for test in cases["tests"]
        for check in test.get("alert_rule_test", [])
        if check.get("exp_alerts")
    }
    assert {rule["alert"] for rule in rules()} - firing == set()


def test_tool_call_alerts_count_errors_not_only_failures() -> None:
    """An outage (NATS, search, a store) ends tool calls with outcome="error"; a critical alert sees it."""
    critical = [r["expr"] for r in rules() if r["labels"]["severity"] == "critical"]
    counting_errors = [e for e in critical if "openmemory_mcp_tool_calls_total" in e and 'outcome!="ok"' in e]
    assert counting_errors, critical


# --- Dashboards ---------------------------------------------------------------------------------


def dashboards() -> dict[str, dict[str, Any]]:
    return {path.name: json.loads(path.read_text()) for path in sorted(DASHBOARDS.glob("*.json"))}


def test_every_dashboard_picks_its_prometheus_through_a_variable() -> None:
    assert dashboards()
    for name, board in dashboards().items():
        variables = {v["name"]: v for v in board.get("templating", {}).get("list", [])}
        variable = variables.get("datasource")
        assert variable is not None, f"{name}: no `datasource` template variable"
        assert (variable["type"], variable["query"]) == ("datasource", "prometheus"), name
        for panel in board["panels"]:
            if panel.get("type") == "row":
                continue
            used = [panel.get("datasource"), *(t.get("datasource") for t in panel.get("targets", []))]
            for datasource in used:
                assert datasource == {"type": "prometheus", "uid": "${datasource}"}, (name, panel["title"])


# --- The chart ----------------------------------------------------------------------------------


@functools.cache
def _render(values: str) -> tuple[dict[str, Any], ...]:
    helm = pytest.importorskip("helm_python", reason="helm-python-sdk missing: uv sync --group deploy")
    chart = helm.Chart.load(CHART)
    rendered = chart.render(json.loads(values), name="openmemory", namespace="memory")
    return tuple(
        doc
        for template, manifest in rendered.items()
        if not template.endswith(".txt")
        for doc in yaml.safe_load_all(manifest)
        if doc
    )


def render(values: dict[str, Any]) -> list[dict[str, Any]]:
    return list(_render(json.dumps(values, sort_keys=True)))


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] == kind]


def labels(doc: dict[str, Any]) -> dict[str, str]:
    found: dict[str, str] = doc["metadata"].get("labels", {})
    return found


def test_the_chart_carries_the_same_rules_as_compose() -> None:
    assert (CHART / "files" / "alerts.yml").read_bytes() == ALERTS.read_bytes()
    [rule] = of_kind(render(DISTRIBUTED), "PrometheusRule")
    assert rule["spec"]["groups"] == yaml.safe_load(ALERTS.read_text())["groups"]


def dashboard_maps(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in of_kind(docs, "ConfigMap") if "grafana_dashboard" in labels(m)]


def test_rules_and_dashboards_follow_the_service_monitor_unless_told_otherwise() -> None:
    assert not of_kind(render({}), "PrometheusRule") and not dashboard_maps(render({}))
    assert of_kind(render({"prometheusRule": {"enabled": True}}), "PrometheusRule")
    assert dashboard_maps(render({"grafanaDashboards": {"enabled": True}}))
    assert not of_kind(render({**SINGLE, "prometheusRule": {"enabled": False}}), "PrometheusRule")
    assert not dashboard_maps(render({**SINGLE, "grafanaDashboards": {"enabled": False}}))
    labelled = render({**SINGLE, "serviceMonitor": {"enabled": True, "labels": {"release": "kps"}}})
    assert labels(of_kind(labelled, "PrometheusRule")[0])["release"] == "kps"


def test_the_chart_ships_every_dashboard() -> None:
    maps = dashboard_maps(render(DISTRIBUTED))
    assert all(labels(m)["grafana_dashboard"] == "1" for m in maps)
    shipped = {key: json.loads(text) for m in maps for key, text in m["data"].items()}
    assert shipped == dashboards()


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a Kubernetes label selector (matchLabels, matchExpressions) selects these labels."""
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": labels.get(key) not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[operator]
        if not ok:
            return False
    return True


def images_behind(service: dict[str, Any], docs: list[dict[str, Any]]) -> set[str]:
    """The container images of the workloads a Service sends traffic to."""
    pods = [d["spec"]["template"] for d in docs if d["kind"] in {"Deployment", "StatefulSet"}]
    return {
        container["image"]
        for pod in pods
        if selects({"matchLabels": service["spec"]["selector"]}, labels(pod))
        for container in pod["spec"]["containers"]
    }


@pytest.mark.parametrize(("values", "components"), [(DISTRIBUTED, COMPONENTS), (SINGLE, {"all"})])
def test_the_service_monitor_scrapes_openmemory_and_no_store(
    values: dict[str, Any], components: set[str]
) -> None:
    docs = render(values)
    [monitor] = of_kind(docs, "ServiceMonitor")
    [endpoint] = monitor["spec"]["endpoints"]
    assert (endpoint["port"], endpoint["path"]) == ("ops", "/metrics")
    services = of_kind(docs, "Service")
    scraped = [s for s in services if selects(monitor["spec"]["selector"], labels(s))]
    left_alone = {s["metadata"]["name"] for s in services if s not in scraped}
    for service in scraped:
        name, images = service["metadata"]["name"], images_behind(service, docs)
        assert images and all(i.startswith("openmemory:") for i in images), (
            f"{name} fronts {images}, not OpenMemory"
        )
        assert "ops" in {p["name"] for p in service["spec"]["ports"]}, f"{name} has no `ops` port"
    assert {labels(s).get("app.kubernetes.io/component") for s in scraped} == components
    if values is DISTRIBUTED:  # the in-chart NATS, Qdrant and Neo4j exist, and are left alone
        assert {f"openmemory-{store}" for store in ("nats", "qdrant", "neo4j")} <= left_alone


def relabelled(endpoint: dict[str, Any], meta: dict[str, str]) -> dict[str, str]:
    """The target labels after the endpoint's relabelings (replace actions, which it uses)."""
    labels = dict(meta)
    for step in endpoint.get("relabelings", []):
        assert step.get("action", "replace") == "replace", step
        source = ";".join(labels.get(s, "") for s in step.get("sourceLabels", []))
        match = re.fullmatch(step.get("regex", "(.*)"), source)
        if match:
            labels[step["targetLabel"]] = match.expand(step.get("replacement", r"\1").replace("$1", r"\1"))
    return labels


def test_compose_and_the_chart_give_targets_the_labels_the_alerts_select() -> None:
    exprs = " ".join(rule["expr"] for rule in rules())
    alert_jobs = set(re.findall(r'\bjob="([^"]+)"', exprs))
    assert len(alert_jobs) == 1, alert_jobs

    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    [job] = [j for j in config["scrape_configs"] if j["job_name"] in alert_jobs]
    compose_components = {s["labels"]["component"] for s in job["static_configs"]}
    assert compose_components == COMPONENTS

    [monitor] = of_kind(render(DISTRIBUTED), "ServiceMonitor")
    [endpoint] = monitor["spec"]["endpoints"]
    for component in COMPONENTS | {"all"}:
        # What prometheus-operator hands the relabelings: its own job (the Service's name) and
        # the Service's labels as meta labels.
        meta = {
            "job": f"openmemory-{component}",
            "__meta_kubernetes_service_label_app_kubernetes_io_component": component,
        }
        labels = relabelled(endpoint, meta)
        assert (labels["job"], labels["component"]) == (job["job_name"], component)
