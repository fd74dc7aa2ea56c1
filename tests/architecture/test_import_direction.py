"""The import graph of ``sync`` and ``connectors`` runs one way: down the floors of
docs/architecture.md, without a circle, and no module reaches into another package's
private (``_``) modules. Read from the source with `ast`, so a new import that points
back up fails here before it is ever run."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

FLOORS: tuple[tuple[str, ...], ...] = (
    # top: what a person or a scheduler starts
    ("sync.__main__",),
    ("sync.cli",),
    ("sync.daemon",),
    ("sync.wiring",),
    ("sync.config",),
    ("sync.extras", "sync.sandbox"),
    ("sync.report",),
    ("sync.engine",),
    ("sync.flowtly",),
    # the connectors room: implementations over the protocol over the HTTP kit
    ("connectors.*",),
    ("connectors.registry", "connectors.testing", "connectors.mapped"),
    ("connectors.base",),
    ("connectors.http",),
    ("connectors.listing", "connectors.setup"),
    ("sync.store", "sync.quality", "sync.mapping"),
    ("sync.privacy",),
    ("sync.policy", "sync.settings_base", "sync.normalize", "sync.exit_codes"),
    # bottom: the vocabulary everyone speaks
    ("sync",),  # the package itself re-exports the vocabulary and names the version
    ("sync.model", "sync.errors"),
)
"""Rooms from the top floor down; a room imports only rooms on lower floors (and itself).
``connectors.*`` stands for every connector implementation (files, memory, a vendor's)."""


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in ("sync", "connectors"):
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if "migrations" in parts:
                continue  # alembic's scripts are loaded by alembic, not imported
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


MODULES = _modules()


def _room(module: str) -> str:
    """The room of ``module``: the longest named room it is in."""
    named = [room for floor in FLOORS for room in floor if not room.endswith(".*")]
    candidates = [room for room in named if module == room or module.startswith(room + ".")]
    if not candidates:
        assert module.split(".")[0] == "connectors", module
        return "connectors.*"  # a connector implementation, or the connectors package
    return max(candidates, key=len)


def _floor(room: str) -> int:
    for index, floor in enumerate(FLOORS):
        if room in floor:
            return index
    raise AssertionError(f"room {room!r} is on no floor of FLOORS")


def _imports(module: str, path: Path) -> Iterator[tuple[str, int]]:
    """(imported module, line) for every import of ours in ``path``, TYPE_CHECKING too."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            if name in MODULES and name != module:
                yield name, node.lineno


EDGES = {module: sorted(set(_imports(module, path))) for module, path in MODULES.items()}


def test_every_room_is_on_a_floor() -> None:
    for module in MODULES:
        _floor(_room(module))


def test_imports_point_down() -> None:
    upward = [
        f"{MODULES[module].relative_to(ROOT)}:{line}: {module} ({_room(module)}) imports "
        f"{target} ({_room(target)})"
        for module, targets in EDGES.items()
        for target, line in targets
        if _room(module) != _room(target) and _floor(_room(target)) <= _floor(_room(module))
    ]
    assert upward == []


def test_no_module_reaches_into_another_package_private_module() -> None:
    reaching = []
    for module, targets in EDGES.items():
        for target, line in targets:
            owner, _, last = target.rpartition(".")
            if last.startswith("_") and not last.startswith("__"):
                inside = module == owner or module.startswith(owner + ".")
                if not inside:
                    reaching.append(f"{MODULES[module].relative_to(ROOT)}:{line}: {target}")
    assert reaching == []


def test_the_module_graph_has_no_circle() -> None:
    graph = {module: {target for target, _ in targets} for module, targets in EDGES.items()}
    # Packages import their own modules to re-export them; that is containment, not a
    # dependency back up, so a package's edges into itself are left out.
    for module in graph:
        graph[module] = {t for t in graph[module] if not t.startswith(module + ".")}
    seen: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(node: str) -> None:
        seen[node] = 1
        stack.append(node)
        for target in sorted(graph[node]):
            if seen.get(target) == 1:
                circles.append([*stack[stack.index(target) :], target])
            elif target not in seen:
                visit(target)
        stack.pop()
        seen[node] = 2

    for node in sorted(graph):
        if node not in seen:
            visit(node)
    assert circles == []


def test_the_engine_reaches_the_store_only_through_its_protocol() -> None:
    """`sync.engine.status` is what the engine knows of the store; of the store's own
    modules it imports only the row types that cross that protocol."""
    reaching = [
        f"{MODULES[module].relative_to(ROOT)}:{line}: {target}"
        for module, targets in EDGES.items()
        if module.startswith("sync.engine")
        for target, line in targets
        if target.startswith("sync.store") and target != "sync.store.rows"
    ]
    assert reaching == []
