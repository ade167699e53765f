"""The MCP Registry listing (`server.json`), checked offline by `make deploy-check`.

`deploy/registry/server.schema.json` is the registry's published schema 2025-12-11
(https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json, generated in the
repository modelcontextprotocol/registry from docs/reference/api/openapi.yaml), vendored byte for
byte: SCHEMA_SHA256 pins it, and the same digest is the one other publishers record for the live
file. The network here reaches package registries only, so the schema is never fetched.

Besides the schema, the registry checks ownership when a version is published: an OCI image must
carry the label `io.modelcontextprotocol.server.name` with the entry's name, and a PyPI package's
README must hold `mcp-name: <name>`. Those live in other files (the Dockerfile, README.md), so the
checks here make sure they agree with `server.json`, and that the versions agree with the product's.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema

ROOT = Path(__file__).resolve().parents[1]
SERVER_JSON = ROOT / "server.json"
SCHEMA = ROOT / "deploy" / "registry" / "server.schema.json"
SCHEMA_URL = "https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json"
SCHEMA_SHA256 = "3fba09590c99f61735d234822279f4223fab9e300c0a81e81c91ab62a4114de0"
OCI_LABEL = "io.modelcontextprotocol.server.name"
# What the registry refuses at publish time though the schema only describes it.
VERSION_RANGE = re.compile(r"[\^~<>=*\s]|(^|\.)[xX](\.|$)|^latest$")

Check = Callable[[str, bool, str], None]


def problems(
    document: dict[str, Any],
    *,
    schema_bytes: bytes,
    dockerfile: str,
    readme: str,
    product_version: str,
) -> list[str]:
    """Everything wrong with a `server.json` document, as sentences; empty when it can be published."""
    found: list[str] = []
    digest = hashlib.sha256(schema_bytes).hexdigest()
    if digest != SCHEMA_SHA256:
        found.append(f"the vendored schema's sha256 is {digest}, not the pinned {SCHEMA_SHA256}")
    schema = json.loads(schema_bytes)
    validator = jsonschema.Draft7Validator(schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)
    for error in sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path)):
        where = "/".join(str(p) for p in error.absolute_path) or "/"
        found.append(f"schema: {where}: {error.message}")
    if document.get("$schema") != SCHEMA_URL:
        found.append(f"$schema must be {SCHEMA_URL}")
    name = document.get("name")
    version = str(document.get("version", ""))
    if VERSION_RANGE.search(version):
        found.append(f"version {version!r} must be one specific version")
    if version != product_version:
        found.append(f"version {version} is not the product's version {product_version}")
    label = re.search(rf'^LABEL\s+{re.escape(OCI_LABEL)}="([^"]*)"', dockerfile, re.MULTILINE)
    if label is None or label.group(1) != name:
        found.append(f'the Dockerfile needs LABEL {OCI_LABEL}="{name}" (the registry checks the image)')
    if f"mcp-name: {name}" not in readme:
        found.append(f"README.md needs the marker 'mcp-name: {name}'")
    for package in document.get("packages", []):
        if package.get("registryType") == "oci":
            tag = str(package.get("identifier", "")).rpartition(":")[2]
            if tag != version:
                found.append(f"the image tag {tag!r} is not the entry's version {version}")
    return found


def product_version(root: Path = ROOT) -> str:
    project = tomllib.loads((root / "packages" / "core" / "pyproject.toml").read_text())
    return str(project["project"]["version"])


def run_checks(check: Check, root: Path = ROOT) -> None:
    """One `check(name, ok, detail)` for the listing (the signature of `deploy/check.py`'s `check`)."""
    try:
        document = json.loads((root / "server.json").read_text())
    except (OSError, ValueError) as exc:
        check("registry: server.json readable", False, str(exc))
        return
    found = problems(
        document,
        schema_bytes=(root / "deploy" / "registry" / "server.schema.json").read_bytes(),
        dockerfile=(root / "Dockerfile").read_text(),
        readme=(root / "README.md").read_text(),
        product_version=product_version(root),
    )
    name = "registry: server.json valid (schema 2025-12-11) and agrees with the image and README"
    check(name, not found, "; ".join(found))
