"""Fixtures shared by the suite: a ``backend`` fixture parametrised over every storage.

Each backend's tests carry its marker (``memory``, ``redis``, ``redis_cluster``,
``cassandra``), so ``-m "not cassandra"`` narrows a run, as does
``--backends memory,redis`` (default: ``ASYNCFEEDS_TEST_BACKENDS``, else all).
Tests of a backend left out are deselected, never skipped; a selected backend
whose server is not running fails its tests: ``make test`` starts the servers.
Helpers the tests import live in ``helpers.py``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest
from helpers import (
    ALL_BACKENDS,
    CASSANDRA_KEYSPACE,
    CASSANDRA_PORT,
    MARKS,
    REDIS_CLUSTER_URL,
    REDIS_URL,
    Backend,
    backends,
    feed_classes,
)

import asyncfeeds
from asyncfeeds.storage import memory as memory_storage

_MARKER_NAMES = {mark.name: name for name, mark in MARKS.items()}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--backends",
        default=os.environ.get("ASYNCFEEDS_TEST_BACKENDS", ",".join(ALL_BACKENDS)),
        help="comma list of the backends to test (default: ASYNCFEEDS_TEST_BACKENDS, else all "
        f"of {', '.join(ALL_BACKENDS)}); tests of the others are deselected",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect the tests that need a backend ``--backends`` leaves out."""
    chosen = {b.strip() for b in config.getoption("--backends").split(",") if b.strip()}
    unknown = chosen - set(ALL_BACKENDS)
    if unknown:
        raise pytest.UsageError(f"unknown backends {sorted(unknown)}; use {ALL_BACKENDS}")
    kept, dropped = [], []
    for item in items:
        needed = {_MARKER_NAMES[m.name] for m in item.iter_markers() if m.name in _MARKER_NAMES}
        (kept if needed <= chosen else dropped).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


async def _configure(name: str) -> None:
    if name == "redis":
        asyncfeeds.configure(redis={"default": REDIS_URL})
    elif name == "redis-cluster":
        asyncfeeds.configure(redis={"default": REDIS_CLUSTER_URL})
    elif name == "cassandra":
        asyncfeeds.configure(
            cassandra={"default": {"hosts": ["127.0.0.1"], "port": CASSANDRA_PORT,
                                   "keyspace": CASSANDRA_KEYSPACE, "consistency": "ONE"}}
        )
        await asyncfeeds.setup(*feed_classes(name))


@pytest.fixture(params=backends(*ALL_BACKENDS))
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    """Every backend in turn, configured against the test servers and cleaned up after."""
    name = request.param
    await _configure(name)
    b = Backend(name, *feed_classes(name))
    try:
        yield b
    finally:
        for feed_class in b.created:
            await feed_class.flush()
        await asyncfeeds.aclose()
        asyncfeeds.config.reset()
        if name == "memory":
            memory_storage.reset()


@pytest.fixture
async def memory_backend() -> AsyncIterator[Backend]:
    """The memory backend alone, for logic that does not depend on storage."""
    b = Backend("memory", *feed_classes("memory"))
    yield b
    memory_storage.reset()
