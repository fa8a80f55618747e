"""Activities stored once by id, in partitions of one key prefix and one hour.

Timelines hold ids; a page is hydrated from this table, where the manager
stores each activity once (as on every backend). The hour bucket, taken from
the time at the start of the id, keeps each partition bounded and lets
``get_many`` read a page's ids from a few partitions.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Mapping, Sequence

from ...activity import ID_TIME_DIGITS
from ..base import expiry_cutoff
from . import registry
from .batches import chunks, write_partition
from .connection import CassandraClient, get_client

_MICROS_PER_HOUR = 3_600_000_000


def bucket_of(activity_id: str) -> int:
    """The hour of an activity id's time; ``-1`` for ids not made by ``Activity``."""
    digits = activity_id[:ID_TIME_DIGITS]
    if len(digits) == ID_TIME_DIGITS and digits.isdigit():
        return int(digits) // _MICROS_PER_HOUR
    return -1


def _by_bucket(activity_ids: Sequence[str]) -> dict[int, list[str]]:
    buckets: dict[int, list[str]] = {}
    for activity_id in dict.fromkeys(activity_ids):
        buckets.setdefault(bucket_of(activity_id), []).append(activity_id)
    return buckets


def seconds_left(activity_id: str, ttl: int | None) -> int | None:
    """Seconds a row of ``activity_id`` lives under a TTL (``None``: no TTL; 0: expired)."""
    digits = activity_id[:ID_TIME_DIGITS]
    if ttl is None or len(digits) < ID_TIME_DIGITS or not digits.isdigit():
        return None
    expires = int(digits) / 1_000_000 + ttl
    return max(0, math.ceil(expires - time.time()))


class CassandraActivityStorage:
    """Serialised activities of one prefix, partitioned by hour, written ``USING TTL``."""

    def __init__(self, cluster: str, table: str, prefix: str, ttl: int | None = None) -> None:
        self.cluster = cluster
        self.table = table
        self.prefix = prefix
        self.ttl = ttl

    def _client(self) -> tuple[CassandraClient, str]:
        client = get_client(self.cluster)
        return client, client.table(self.table)

    async def add_many(self, items: Mapping[str, bytes]) -> None:
        if not items:
            return
        client, table = self._client()
        insert = (
            f"INSERT INTO {table} (prefix, bucket, activity_id, data) VALUES (?, ?, ?, ?) "
            f"USING TTL ?"
        )
        lifetimes = {i: seconds_left(i, self.ttl) for i in items}
        buckets = _by_bucket([i for i, left in lifetimes.items() if left != 0])
        await asyncio.gather(
            registry.register(client, self.table, self.prefix, [str(b) for b in buckets]),
            *(
                write_partition(
                    client,
                    insert,
                    [(self.prefix, bucket, i, items[i], lifetimes[i] or 0) for i in activity_ids],
                )
                for bucket, activity_ids in buckets.items()
            ),
        )

    async def get_many(self, activity_ids: Sequence[str]) -> list[bytes | None]:
        cutoff = expiry_cutoff(self.ttl) or ""  # expired rows may outlive it by a second
        live = [i for i in activity_ids if i >= cutoff]
        client, table = self._client()
        select = (
            f"SELECT activity_id, data FROM {table} "
            f"WHERE prefix = ? AND bucket = ? AND activity_id IN ?"
        )
        results = await asyncio.gather(
            *(
                client.execute(select, [self.prefix, bucket, list(chunk)])
                for bucket, ids in _by_bucket(live).items()
                for chunk in chunks(ids)
            )
        )
        found = {row["activity_id"]: row["data"] for result in results for row in result}
        return [found.get(activity_id) for activity_id in activity_ids]

    async def remove_many(self, activity_ids: Sequence[str]) -> None:
        client, table = self._client()
        delete = f"DELETE FROM {table} WHERE prefix = ? AND bucket = ? AND activity_id IN ?"
        await asyncio.gather(
            *(
                client.execute(delete, [self.prefix, bucket, list(chunk)])
                for bucket, ids in _by_bucket(activity_ids).items()
                for chunk in chunks(ids)
            )
        )

    async def flush(self) -> None:
        client, table = self._client()
        buckets = await registry.partitions(client, self.table, self.prefix)
        delete = f"DELETE FROM {table} WHERE prefix = ? AND bucket = ?"
        await asyncio.gather(*(client.execute(delete, [self.prefix, int(b)]) for b in buckets))
        await registry.forget(client, self.table, self.prefix)
