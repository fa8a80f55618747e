"""The house rules of ``asyncfeeds/``, checked on its source: imports flow one way.

Every import counts, also those under ``TYPE_CHECKING`` and inside functions: a
cycle that only the type checker follows is still two modules that cannot be
read, changed or tested apart.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import asyncfeeds

PACKAGE = Path(asyncfeeds.__file__).resolve().parent

LAYERS = [
    {"exceptions", "types", "verbs", "keys", "versions", "redis_urls", "cassandra_settings",
     "importing", "compat", "progress", "metrics"},
    {"activity", "pages"},
    {"aggregators", "serializers", "config"},
    {"storage", "health"},
    {"feeds", "provision"},
    {"fanout"},
    {"manager", "worker", "testing"},
    {"demo", "cli", ""},
]
"""The package bottom up, by top-level module or folder (``""``: ``asyncfeeds/__init__``)."""

FANOUT_LAYERS = [
    {"payload", "inflight"},
    {"clock", "deadletters", "lease", "release", "queue", "stats", "pull"},
    {"manager"},
    {"jobs", "status"},
    {"worker"},
]
"""``asyncfeeds.fanout`` bottom up: a module imports only from its own layer or below."""


def _modules() -> dict[str, tuple[ast.Module, bool]]:
    """Every module of the package by dotted name, with its syntax tree and whether it is
    a package's ``__init__``."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        found[".".join(parts)] = (ast.parse(path.read_text(), str(path)), is_package)
    return found


MODULES = _modules()


def _imports(name: str) -> Iterator[tuple[str, ast.AST]]:
    """The package modules ``name`` imports (``from x import y`` counts ``x.y`` when it is
    a module, else ``x``), with the import node."""
    tree, is_package = MODULES[name]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in MODULES:
                    yield alias.name, node
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            for alias in node.names:
                if f"{target}.{alias.name}" in MODULES:
                    yield f"{target}.{alias.name}", node
                elif target in MODULES:
                    yield target, node


GRAPH = {name: {target for target, _ in _imports(name)} - {name} for name in MODULES}


def _cycle() -> list[str] | None:
    """One import cycle of the package, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(name: str) -> list[str] | None:
        state[name] = 1
        path.append(name)
        for target in sorted(GRAPH[name]):
            if state.get(target) == 1:
                return [*path[path.index(target):], target]
            if target not in state and (found := visit(target)):
                return found
        path.pop()
        state[name] = 2
        return None

    for name in sorted(GRAPH):
        if name not in state and (found := visit(name)):
            return found
    return None


def test_the_package_has_no_import_cycle() -> None:
    assert len(GRAPH) > 50 and "asyncfeeds.fanout.manager" in GRAPH["asyncfeeds"]
    cycle = _cycle()
    assert cycle is None, " -> ".join(cycle or [])


def test_a_cycle_would_be_found() -> None:
    GRAPH["asyncfeeds.fanout.payload"].add("asyncfeeds.fanout.jobs")
    try:
        assert _cycle() is not None
    finally:
        GRAPH["asyncfeeds.fanout.payload"].discard("asyncfeeds.fanout.jobs")


def _room(name: str) -> str:
    """The top-level module or folder of ``asyncfeeds`` a module lives in."""
    return name.split(".")[1] if "." in name else ""


def test_imports_flow_from_models_to_storage_to_feeds_to_fanout_to_the_cli() -> None:
    layer_of = {room: n for n, rooms in enumerate(LAYERS) for room in rooms}
    assert {_room(name) for name in MODULES} == set(layer_of), "place a new module in LAYERS"
    upward = [
        (name, target)
        for name in MODULES
        for target in GRAPH[name]
        if layer_of[_room(target)] > layer_of[_room(name)]
    ]
    assert upward == []


def test_fanout_imports_flow_payload_queue_manager_jobs_worker() -> None:
    layer_of = {f"asyncfeeds.fanout.{m}": n for n, layer in enumerate(FANOUT_LAYERS) for m in layer}
    fanout = {name for name in MODULES if name.startswith("asyncfeeds.fanout.")}
    assert fanout == set(layer_of), "a new fanout module needs its place in FANOUT_LAYERS"
    upward = [
        (name, target)
        for name in fanout
        for target in GRAPH[name]
        if target in layer_of and layer_of[target] > layer_of[name]
    ]
    assert upward == []


def test_the_manager_asks_feed_classes_never_storages() -> None:
    reaching_down = [
        (name, target)
        for name in MODULES
        if name.startswith("asyncfeeds.fanout")
        for target in GRAPH[name]
        if target.startswith("asyncfeeds.storage")
    ]
    assert reaching_down == []


def test_storages_know_neither_feeds_nor_fanout_nor_each_other() -> None:
    backends = ("memory", "redis", "cassandra")
    wrong = []
    for name in MODULES:
        if not name.startswith("asyncfeeds.storage"):
            continue
        own = next((b for b in backends if name.startswith(f"asyncfeeds.storage.{b}")), None)
        for target in GRAPH[name]:
            other = next(
                (b for b in backends if target.startswith(f"asyncfeeds.storage.{b}")), None
            )
            if target.startswith(("asyncfeeds.feeds", "asyncfeeds.fanout")) or (
                other is not None and other != own
            ):
                wrong.append((name, target))
    assert wrong == []


def test_one_module_attr_loader() -> None:
    """Only ``asyncfeeds.importing`` imports a module named at run time; other modules may
    import an optional dependency by its fixed name."""
    loaders = []
    for name, (tree, _) in MODULES.items():
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute | ast.Name)
                and (getattr(node.func, "attr", None) or getattr(node.func, "id", None))
                in ("import_module", "__import__")
                and not (node.args and isinstance(node.args[0], ast.Constant))
            ):
                loaders.append(name)
    assert loaders == ["asyncfeeds.importing"]


def test_the_activity_shard_count_is_set_once() -> None:
    from asyncfeeds.storage.redis import keys, scripts

    assert keys.ACTIVITY_SHARDS == 8
    assert "% 8" not in scripts.ACTIVITY_HASHES and "% shards" in scripts.ACTIVITY_HASHES
    assert "local tag, shards = ARGV[1], tonumber(ARGV[2])" in scripts.READ_PAGE.source
