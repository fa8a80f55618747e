"""The public surface of ``asyncfeeds``: pinned, complete, one import path per name."""

from __future__ import annotations

import ast
import importlib
import types
from pathlib import Path

import asyncfeeds

PACKAGE = Path(asyncfeeds.__file__).resolve().parent

PUBLIC = [
    "Activity",
    "ActivityNotFoundError",
    "AggregatedActivity",
    "AggregatedFeed",
    "AsyncFeedsError",
    "BaseAggregator",
    "CassandraAggregatedFeed",
    "CassandraFeed",
    "CassandraNotificationFeed",
    "Counts",
    "DuplicateActivityError",
    "FanoutPriority",
    "Feed",
    "Manager",
    "MemoryAggregatedFeed",
    "MemoryFeed",
    "MemoryNotificationFeed",
    "NotificationActivity",
    "NotificationAggregator",
    "NotificationFeed",
    "Page",
    "RecentVerbAggregator",
    "RedisAggregatedFeed",
    "RedisFeed",
    "RedisNotificationFeed",
    "SerializationError",
    "StorageUnavailableError",
    "Subscription",
    "Verb",
    "__version__",
    "aclose",
    "configure",
    "get_verb_by_id",
    "ping",
    "register",
    "register_verb",
    "setup",
]

ALIASES = {
    "asyncfeeds.manager": ["FanoutPriority", "Manager"],
    "asyncfeeds.fanout": ["FanoutPriority", "Manager", "create_queue", "create_worker",
                          "run_worker"],
    "asyncfeeds.worker": ["create_worker", "run_worker", "serve", "worker_settings"],
}
"""Modules that re-export what another module defines: the documented entry points
(``asyncfeeds.manager`` and ``asyncfeeds.worker`` of API.md, ``asyncfeeds.fanout`` of the
README's ``create_queue``). Each gives the very same object as the defining module."""


def test_all_is_pinned_and_names_every_public_member() -> None:
    assert asyncfeeds.__all__ == PUBLIC
    members = [
        name
        for name, value in vars(asyncfeeds).items()
        if (not name.startswith("_") or name == "__version__")
        and not isinstance(value, types.ModuleType)
    ]
    assert sorted(members) == sorted(asyncfeeds.__all__)


def test_each_public_name_is_defined_once_and_exported_as_itself() -> None:
    for name in asyncfeeds.__all__:
        if name == "__version__":
            continue
        value = getattr(asyncfeeds, name)
        home = importlib.import_module(value.__module__)
        assert value.__module__.startswith("asyncfeeds.") and value.__module__ != "asyncfeeds"
        assert getattr(home, name) is value, name


def test_aliases_are_the_same_objects_and_no_other_module_re_exports() -> None:
    for module_name, names in ALIASES.items():
        module = importlib.import_module(module_name)
        assert sorted(module.__all__) == sorted(names), module_name
        for name in names:
            value = getattr(module, name)
            assert getattr(importlib.import_module(value.__module__), name) is value
            assert value.__module__ != module_name
            if name in asyncfeeds.__all__:
                assert value is getattr(asyncfeeds, name)
    # Read from the source (importing every module would run the demo's verb registry).
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text())
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        is_package = parts[-1] == "__init__"
        name = ".".join(parts[:-1] if is_package else parts)
        if name in ALIASES or name == "asyncfeeds":
            continue
        exported = _all_of(tree)
        for node in tree.body:
            if not isinstance(node, ast.ImportFrom):
                continue
            # a package's __init__ may gather the names of its own submodules
            own_submodule = is_package and node.level == 1
            for alias in node.names:
                assert (alias.asname or alias.name) not in exported or own_submodule, (
                    f"{name} re-exports {alias.name}"
                )


def _all_of(tree: ast.Module) -> set[str]:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            return {e.value for e in ast.walk(node.value) if isinstance(e, ast.Constant)}
    return set()


def test_version_is_the_distribution_version() -> None:
    from importlib.metadata import version

    assert asyncfeeds.__version__ == version("asyncfeeds")
