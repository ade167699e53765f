"""The layout check (`scripts/check_layout.py`, run by `make lint`) on the real tree and on small
trees that break each of its rules."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "check_layout.py"


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_layout", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tree(root: Path, files: dict[str, str]) -> dict[str, Path]:
    """Write `files` (path under root -> text) and map each top-level package to its src folder."""
    packages = {}
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        src, _, rest = name.partition("/src/")
        packages[rest.split("/")[0]] = root / src / "src"
    return packages


def test_this_repository_passes() -> None:
    done = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout
    assert done.stdout.strip().endswith("layout: ok")


def test_each_rule_is_enforced(tmp_path: Path) -> None:
    check = load()
    both = "import core.shared\nimport core.a\nimport core.c\nimport core.fixtures\n"
    product = tree(
        tmp_path,
        {
            "core/src/core/__init__.py": "",
            "core/src/core/shared.py": "import core.lonely\n",
            "core/src/core/lonely.py": "x = 1\n",
            "core/src/core/solo.py": "x = 1\n",
            "core/src/core/a.py": "from core import b\n",
            "core/src/core/b.py": "import core.a\n",
            "core/src/core/typed.py": "import typing\nif typing.TYPE_CHECKING:\n    import core.c\n",
            "core/src/core/c.py": "import core.typed\n",
            "core/src/core/fixtures.py": "def f():\n    import pytest\n",
            "one/src/one/__init__.py": both + "import core.solo\n",
            "two/src/two/__init__.py": both,
            "two/src/two/greedy.py": "from one import thing\n",
        },
    )
    found = check.problems(product, {"one", "two"}, {}, "core")
    assert sorted(found) == [
        "core.fixtures imports pytest: test support belongs in packages/testing",
        "core.solo is in core but used by one: move it into its service",
        "import cycle: core.a <-> core.b",
        "two.greedy imports another service (one): share it through core",
    ]  # core.lonely counts (both reach it through core.shared); core.typed <-> core.c is type-only
    assert check.problems(product, {"one", "two"}, {"core.solo": "why"}, "core") == [
        line for line in found if "core.solo" not in line
    ]
