"""The MCP Registry listing (`deploy/registry.py`): the shipped `server.json` passes, and each thing
the registry would refuse is caught."""

from __future__ import annotations

import copy
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "registry.py"


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("deploy_registry", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


registry = load()
ROOT: Path = registry.ROOT


def shipped() -> dict[str, Any]:
    return dict(
        document=json.loads((ROOT / "server.json").read_text()),
        schema_bytes=registry.SCHEMA.read_bytes(),
        dockerfile=(ROOT / "Dockerfile").read_text(),
        readme=(ROOT / "README.md").read_text(),
        product_version=registry.product_version(),
    )


def problems(**changes: Any) -> list[str]:
    args = shipped() | changes
    document = args.pop("document")
    found: list[str] = registry.problems(document, **args)
    return found


def test_the_shipped_listing_can_be_published() -> None:
    assert problems() == []


def test_the_vendored_schema_is_the_pinned_file() -> None:
    schema = registry.SCHEMA.read_bytes()
    loosened = schema.replace(b'"maxLength": 100', b'"maxLength": 1000')
    assert any("sha256" in p for p in problems(schema_bytes=loosened))
    assert json.loads(schema)["$id"] == registry.SCHEMA_URL


def edited(path: list[str | int], value: Any) -> dict[str, Any]:
    document: dict[str, Any] = copy.deepcopy(shipped()["document"])
    target: Any = document
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return document


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (["description"], "x" * 101, "schema: description"),
        (["name"], "openmemory", "schema: name"),
        (["packages", 0, "transport", "type"], "websocket", "schema: packages/0/transport"),
        (["version"], "latest", "one specific version"),
        (["version"], "9.9.9", "not the product's version"),
        (["packages", 0, "identifier"], "ghcr.io/openmemory/openmemory:latest", "image tag"),
        (["$schema"], registry.SCHEMA_URL.replace("2025-12-11", "2025-09-29"), "$schema"),
    ],
)
def test_a_listing_the_registry_would_refuse_is_caught(
    path: list[str | int], value: Any, expected: str
) -> None:
    found = problems(document=edited(path, value))
    assert any(expected in p for p in found), found


def test_the_image_label_and_the_readme_marker_must_name_the_entry() -> None:
    dockerfile = shipped()["dockerfile"]
    unlabelled = dockerfile.replace(registry.OCI_LABEL, "org.example.name")
    assert any("LABEL" in p for p in problems(dockerfile=unlabelled))
    readme = shipped()["readme"]
    assert any("mcp-name" in p for p in problems(readme=readme.replace("mcp-name:", "mcp name:")))
