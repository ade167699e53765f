"""Check that the tree says what the architecture says (`make lint` runs this).

1. A module lives in the shared package (`packages/core`) only if two or more services use it,
   directly or through other core modules: what one service alone needs belongs in that service.
2. No service imports another service.
3. No modules import each other in a cycle (imports at module level; those made only for type
   checking do not run).
4. The product packages do not import pytest.

Exits 1 with one line per problem.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORE = "openmemory_core"
SERVICES = {
    "openmemory_gateway": ROOT / "services/gateway/src",
    "openmemory_ingest": ROOT / "services/ingest/src",
    "openmemory_search": ROOT / "services/search/src",
    "openmemory_admin": ROOT / "services/admin/src",
}
PRODUCT = {CORE: ROOT / "packages/core/src", **SERVICES, "openmemory_bench": ROOT / "bench/src"}

# Core modules that fewer than two services use, and why they stay in core.
EXCEPTIONS = {
    f"{CORE}.cli": "the `openmemory` command itself: it runs the services, none imports it",
    f"{CORE}.backup": "the CLI's backup/restore of the bus, beside the CLI",
    f"{CORE}.remote": "the CLI's memory commands against a running system (MCP and admin API clients)",
}


def modules(package: str, src: Path) -> dict[str, Path]:
    """Every module of a package: dotted name -> file."""
    found = {}
    for path in sorted((src / package).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _statements(body: list[ast.stmt], top_level_only: bool) -> Iterator[ast.stmt]:
    """The statements that run: at module level only (through if/try/with blocks), or anywhere."""
    for node in body:
        if isinstance(node, ast.If) and _type_checking(node):
            continue  # imports for the type checker only
        yield node
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and top_level_only:
            continue
        for field in ("body", "orelse", "finalbody"):
            yield from _statements(getattr(node, field, []), top_level_only)
        for handler in getattr(node, "handlers", []):
            yield from _statements(handler.body, top_level_only)


def imports(path: Path, name: str, top_level_only: bool) -> Iterator[str]:
    """The modules `path` imports (`from a import b` names a.b when that is a module)."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in _statements(tree.body, top_level_only):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def graph(every: dict[str, Path], top_level_only: bool) -> dict[str, set[str]]:
    return {
        name: {target for target in imports(path, name, top_level_only) if target in every and target != name}
        for name, path in every.items()
    }


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Each strongly connected group of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in edges.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    sys.setrecursionlimit(10_000)
    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def reachable(edges: dict[str, set[str]], start: set[str], within: set[str]) -> set[str]:
    """The modules `start` imports, directly or through others, walking only through `within`."""
    seen: set[str] = set()
    todo = list(start)
    while todo:
        node = todo.pop()
        if node not in seen and node in within:
            seen.add(node)
            todo.extend(edges.get(node, ()))
    return seen


def problems(
    product: dict[str, Path] | None = None,
    services: set[str] | None = None,
    exceptions: dict[str, str] | None = None,
    shared: str = CORE,
) -> list[str]:
    """Every problem of the tree: `product` maps each package to its `src` folder, `services` names the
    service packages among them, `shared` the shared one (the defaults: this repository)."""
    product = PRODUCT if product is None else product
    services = set(SERVICES) if services is None else services
    exceptions = EXCEPTIONS if exceptions is None else exceptions
    every: dict[str, Path] = {}
    for package, src in product.items():
        every.update(modules(package, src))
    found = []
    anywhere = graph(every, top_level_only=False)
    core = {m for m in every if m.split(".")[0] == shared}
    users: dict[str, set[str]] = {m: set() for m in core}
    for service in sorted(services):
        own = {m for m in every if m.split(".")[0] == service}
        for module in reachable(anywhere, own, own | core):
            if module in users:
                users[module].add(service)
        for module in sorted(own):
            others = {t.split(".")[0] for t in anywhere[module]} & (services - {service})
            for other in sorted(others):
                found.append(f"{module} imports another service ({other}): share it through {shared}")
    for module in sorted(core):
        is_package = every[module].name == "__init__.py"
        if len(users[module]) < 2 and module not in exceptions and not is_package:
            who = ", ".join(sorted(users[module])) or "no service"
            found.append(f"{module} is in core but used by {who}: move it into its service")
    found.extend(
        f"import cycle: {' <-> '.join(group)}" for group in cycles(graph(every, top_level_only=True))
    )
    for module, path in sorted(every.items()):
        if "pytest" in set(imports(path, module, top_level_only=False)):
            found.append(f"{module} imports pytest: test support belongs in packages/testing")
    return found


def main() -> int:
    found = problems()
    for line in found:
        print(line)
    print(f"layout: {len(found)} problem(s)" if found else "layout: ok")
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
