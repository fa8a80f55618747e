"""Splitting work into statement-sized pieces: ``IN`` lists and unlogged batches."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

from .connection import CassandraClient

T = TypeVar("T")

IN_LIMIT = 100
"""Ids per ``IN (...)`` list, well inside Cassandra's guardrails."""

BATCH_BYTES = 32_000
"""Payload per unlogged batch, below Cassandra's 50 KiB batch failure threshold."""

BATCH_STATEMENTS = 100


def chunks(items: Sequence[T], size: int = IN_LIMIT) -> Iterator[Sequence[T]]:
    """Consecutive slices of at most ``size`` items."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


async def write_partition(client: CassandraClient, cql: str, rows: Sequence[Sequence[Any]]) -> None:
    """Run ``cql`` for each row of ONE partition, as unlogged batches of bounded size."""
    await write_rows(client, cql, rows)


async def write_rows(client: CassandraClient, cql: str, rows: Sequence[Sequence[Any]]) -> None:
    """Run ``cql`` for each row as unlogged batches of bounded size, all at once.

    Rows of one partition should come together: a batch then writes few partitions.
    Each statement must be idempotent (timestamped): a batch is not atomic across
    partitions, so a failed one is completed by running it again.
    """
    groups: list[list[Sequence[Any]]] = [[]]
    size = 0
    for row in rows:
        row_size = sum(_size(v) for v in row)
        if groups[-1] and (size + row_size > BATCH_BYTES or len(groups[-1]) >= BATCH_STATEMENTS):
            groups.append([])
            size = 0
        groups[-1].append(row)
        size += row_size
    await asyncio.gather(*(_write(client, cql, group) for group in groups if group))


async def _write(client: CassandraClient, cql: str, rows: list[Sequence[Any]]) -> None:
    if len(rows) == 1:
        await client.execute(cql, rows[0])
    else:
        await client.execute_batch((cql, row) for row in rows)


def _size(value: Any) -> int:
    """Bytes a bound value adds to a batch, roughly (lists count their items)."""
    if isinstance(value, bytes | str):
        return len(value)
    if isinstance(value, list | tuple):
        return sum(_size(v) for v in value)
    return 8
