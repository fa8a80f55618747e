"""Which partitions each key prefix wrote, so ``flush`` finds them without scanning a table.

Cassandra cannot list partition keys by prefix cheaply, so the first write to a
partition (per process) adds one row to ``feed_registry``, partitioned by
``(table, key prefix, bucket)``; a flush reads those few partitions. The bucket
(a hash of the key) keeps a prefix with millions of feeds spread out.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Callable, Iterable

from .batches import write_rows
from .connection import CassandraClient
from .schema import REGISTRY_TABLE

BUCKETS = 16
_MAX_KNOWN = 200_000
_known: set[tuple[str, str, str, str, str]] = set()


def _bucket(partition_key: str) -> int:
    return zlib.crc32(partition_key.encode()) % BUCKETS


async def register(
    client: CassandraClient, table: str, key_prefix: str, partition_keys: Iterable[str]
) -> None:
    """Record partitions of ``table`` written under ``key_prefix`` (once per process)."""
    scope = (client.address, client.keyspace, table, key_prefix)
    new = [k for k in dict.fromkeys(partition_keys) if (*scope, k) not in _known]
    if not new:
        return
    insert = (
        f"INSERT INTO {client.table(REGISTRY_TABLE)} "
        f"(table_name, key_prefix, bucket, partition_key) VALUES (?, ?, ?, ?)"
    )
    by_bucket = sorted((_bucket(k), k) for k in new)
    # batches spanning few bucket partitions each
    await write_rows(client, insert, [(table, key_prefix, b, k) for b, k in by_bucket])
    if len(_known) > _MAX_KNOWN:
        _known.clear()
    _known.update((*scope, k) for k in new)


async def partitions(client: CassandraClient, table: str, key_prefix: str) -> list[str]:
    """Every partition of ``table`` registered under ``key_prefix``."""
    select = (
        f"SELECT partition_key FROM {client.table(REGISTRY_TABLE)} "
        f"WHERE table_name = ? AND key_prefix = ? AND bucket = ?"
    )
    pages = await asyncio.gather(
        *(client.rows(select, [table, key_prefix, b]) for b in range(BUCKETS))
    )
    return [row["partition_key"] for rows in pages for row in rows]


async def forget(
    client: CassandraClient,
    table: str,
    key_prefix: str,
    owned: Callable[[str], bool] | None = None,
) -> None:
    """Drop the registrations of ``key_prefix`` (after its partitions were deleted).

    With ``owned`` only the partitions it accepts are forgotten: another feed
    class whose keys start the same way keeps its registrations.
    """
    scope = (client.address, client.keyspace, table, key_prefix)
    if owned is None:
        delete = (
            f"DELETE FROM {client.table(REGISTRY_TABLE)} "
            f"WHERE table_name = ? AND key_prefix = ? AND bucket = ?"
        )
        await asyncio.gather(
            *(client.execute(delete, [table, key_prefix, b]) for b in range(BUCKETS))
        )
        _known.difference_update([k for k in _known if k[:4] == scope])
        return
    keys = [k for k in await partitions(client, table, key_prefix) if owned(k)]
    delete_one = (
        f"DELETE FROM {client.table(REGISTRY_TABLE)} "
        f"WHERE table_name = ? AND key_prefix = ? AND bucket = ? AND partition_key = ?"
    )
    await asyncio.gather(
        *(client.execute(delete_one, [table, key_prefix, _bucket(k), k]) for k in keys)
    )
    _known.difference_update((*scope, k) for k in keys)
