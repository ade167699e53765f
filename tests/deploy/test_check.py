"""The deploy check's own checks (`deploy/check.py`), where one can be shown to fail: the full run is
`make deploy-check`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


@pytest.fixture
def check(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.syspath_prepend(str(DEPLOY))  # check.py imports its siblings by name
    for name in ("check", "image", "manifests", "registry"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    import check as module

    return module


def compose(content: str) -> dict[str, Any]:
    """A rendered compose file with one NATS node that reads `content` as its config."""
    node = {"command": ["-c", "/etc/nats.conf"], "configs": [{"target": "/etc/nats.conf", "source": "conf"}]}
    return {"services": {"nats": node}, "configs": {"conf": {"content": content}}}


def test_the_compose_nats_check_fails_a_config_that_does_not_sync_every_write(check: Any) -> None:
    assert check.compose_nats_sync(compose("jetstream {\n  sync_interval: always\n}\n"), ["nats"]) == []
    problems = check.compose_nats_sync(compose("jetstream {\n}\n"), ["nats"])
    assert len(problems) == 1 and "'sync_interval': 120000000000" in problems[0]
    problems = check.compose_nats_sync(compose("jetstream {\n}\n"), ["nats", "nats-2"])
    assert "nats-2: no config of `configs` read with -c" in problems[0]
