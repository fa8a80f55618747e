"""Flat timelines: one partition per feed, rows of activity ids, newest first.

Every add and remove is written ``USING TIMESTAMP <version of the call>``, so
Cassandra's last-write-wins applies the last manager call for an activity
whatever order the jobs arrive in (a removal's tombstone hides an older add).
The activity data lives once in the activities table; a page is hydrated from
it. Trimming reads the ids down to position ``max_length`` and drops the rest
with ONE range tombstone. It runs after the write, so among concurrent writers
the last to read sees every row and the feed never stays above ``max_length``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping, Sequence

from ...keys import KeyFormat
from ..base import Bounds, Entry, expiry_cutoff, within_ttl
from . import registry
from .activities import CassandraActivityStorage, seconds_left
from .batches import chunks, write_partition
from .connection import CassandraClient, get_client


class CassandraTimelineStorage:
    """Timelines of one key prefix in a shared ``timeline`` table; the data of the
    activities lives in the bound ``activities`` storage."""

    def __init__(
        self, cluster: str, table: str, key_prefix: str, activities: CassandraActivityStorage
    ) -> None:
        self.cluster = cluster
        self.table = table
        self.key_prefix = key_prefix
        self.activities = activities

    def _cutoff(self) -> str:
        """The oldest id the TTL keeps (``""``: no TTL)."""
        return expiry_cutoff(self.activities.ttl) or ""

    def _client(self) -> tuple[CassandraClient, str]:
        client = get_client(self.cluster)
        return client, client.table(self.table)

    # -- writes ------------------------------------------------------------------------
    async def add_many(
        self,
        entries: Mapping[str, Sequence[Entry]],
        max_length: int | None,
        version: int,
    ) -> dict[str, int]:
        client, table = self._client()
        keys = [key for key, items in entries.items() if items]
        writes = asyncio.gather(
            *(self._add_one(client, table, k, entries[k], max_length, version) for k in keys)
        )
        calls: list[Awaitable[object]] = [
            registry.register(client, self.table, self.key_prefix, keys),
        ]
        data = {i: item for items in entries.values() for i, item in items if item}
        if data:
            calls.append(self.activities.add_many(data))
        added, _ = await asyncio.gather(writes, asyncio.gather(*calls))
        counts = dict.fromkeys(entries, 0)
        counts.update(zip(keys, added, strict=True))
        return counts

    async def _add_one(
        self,
        client: CassandraClient,
        table: str,
        key: str,
        items: Sequence[Entry],
        max_length: int | None,
        version: int,
    ) -> int:
        cutoff = self._cutoff()
        ids = sorted({i for i, _ in items if i >= cutoff}, reverse=True)
        present = await self._present(client, table, key, ids)
        # Entries older than the newest max_length of this very call cannot survive the trim.
        kept = ids if max_length is None else ids[:max_length]
        ttl = self.activities.ttl
        await write_partition(
            client,
            f"INSERT INTO {table} (feed_key, activity_id) VALUES (?, ?) "
            f"USING TIMESTAMP ? AND TTL ?",
            [(key, i, version, seconds_left(i, ttl) or 0) for i in kept],
        )
        if max_length is not None:
            await self._trim(client, table, key, max_length)
        return sum(1 for activity_id in ids if activity_id not in present)

    async def remove_many(
        self, entries: Mapping[str, Sequence[str]], version: int
    ) -> dict[str, int]:
        client, table = self._client()
        removed = await asyncio.gather(
            *(self._remove_one(client, table, key, ids, version) for key, ids in entries.items())
        )
        return dict(zip(entries, removed, strict=True))

    async def _remove_one(
        self, client: CassandraClient, table: str, key: str, ids: Sequence[str], version: int
    ) -> int:
        """Delete every id, held or not: the tombstone keeps an older, late add out."""
        unique = list(dict.fromkeys(ids))
        present = await self._present(client, table, key, unique)
        delete = f"DELETE FROM {table} USING TIMESTAMP ? WHERE feed_key = ? AND activity_id IN ?"
        await asyncio.gather(
            *(client.execute(delete, [version, key, list(c)]) for c in chunks(unique))
        )
        return len(present)

    async def trim(self, key: str, length: int) -> None:
        client, table = self._client()
        await self._trim(client, table, key, length)

    async def _trim(self, client: CassandraClient, table: str, key: str, length: int) -> None:
        if length == 0:
            await client.execute(f"DELETE FROM {table} WHERE feed_key = ?", [key])
            return
        newest = await client.execute(
            f"SELECT activity_id FROM {table} WHERE feed_key = ? LIMIT ?",
            [key, length + 1],
            page_size=length + 1,
        )
        ids = [row["activity_id"] for row in newest]
        if len(ids) > length:
            await client.execute(
                f"DELETE FROM {table} WHERE feed_key = ? AND activity_id < ?",
                [key, ids[length - 1]],
            )

    async def delete_many(self, keys: Sequence[str]) -> None:
        client, table = self._client()
        delete = f"DELETE FROM {table} WHERE feed_key = ?"
        await asyncio.gather(*(client.execute(delete, [key]) for key in dict.fromkeys(keys)))

    async def flush(self, key_format: KeyFormat) -> None:
        client, _ = self._client()
        keys = await registry.partitions(client, self.table, key_format.prefix)
        await self.delete_many([k for k in keys if key_format.owns(k)])
        await registry.forget(client, self.table, key_format.prefix, key_format.owns)

    # -- reads -------------------------------------------------------------------------
    async def get_slice(
        self,
        key: str,
        start: int,
        stop: int | None,
        bounds: Bounds,
        newest_first: bool,
    ) -> list[tuple[str, bytes | None]]:
        if stop is not None and stop <= start:
            return []
        client, table = self._client()
        where, params = _clustering_range(within_ttl(bounds, self._cutoff()))
        cql = (
            f"SELECT activity_id FROM {table} WHERE feed_key = ?{where} "
            f"ORDER BY activity_id {'DESC' if newest_first else 'ASC'}"
        )
        page_size = 5000
        if stop is not None:
            cql += " LIMIT ?"
            params.append(stop)
            page_size = min(stop, page_size)
        rows = await client.rows(cql, [key, *params], page_size=page_size)
        return [(row["activity_id"], None) for row in rows[start:]]

    async def get_slices(
        self,
        keys: Sequence[str],
        limit: int,
        bounds: Bounds,
        with_data: bool = True,
    ) -> list[list[tuple[str, bytes | None]]]:
        """The newest ``limit`` ids of each timeline: one query per feed, all concurrent."""
        return list(
            await asyncio.gather(*(self.get_slice(key, 0, limit, bounds, True) for key in keys))
        )

    async def count(self, key: str) -> int:
        client, table = self._client()
        result = await client.execute(
            f"SELECT COUNT(*) FROM {table} WHERE feed_key = ? AND activity_id >= ?",
            [key, self._cutoff()],
        )
        return int(result.first()["count"])

    async def contains_many(self, key: str, activity_ids: Sequence[str]) -> list[bool]:
        client, table = self._client()
        present = await self._present(client, table, key, list(dict.fromkeys(activity_ids)))
        cutoff = self._cutoff()
        return [i in present and i >= cutoff for i in activity_ids]

    async def index_of(self, key: str, activity_id: str) -> int | None:
        if activity_id < self._cutoff():
            return None
        client, table = self._client()
        present, newer = await asyncio.gather(
            self._present(client, table, key, [activity_id]),
            client.execute(
                f"SELECT COUNT(*) FROM {table} WHERE feed_key = ? AND activity_id > ?",
                [key, activity_id],
            ),
        )
        return int(newer.first()["count"]) if present else None

    @staticmethod
    async def _present(
        client: CassandraClient, table: str, key: str, ids: Sequence[str]
    ) -> set[str]:
        select = f"SELECT activity_id FROM {table} WHERE feed_key = ? AND activity_id IN ?"
        results = await asyncio.gather(
            *(client.execute(select, [key, list(c)]) for c in chunks(ids))
        )
        return {row["activity_id"] for result in results for row in result}


def _clustering_range(bounds: Bounds) -> tuple[str, list[object]]:
    """The ``AND activity_id ...`` conditions of a filtered read, the stricter bound winning."""
    where = ""
    params: list[object] = []
    if bounds.gt is not None and (bounds.gte is None or bounds.gt >= bounds.gte):
        where, params = " AND activity_id > ?", [bounds.gt]
    elif bounds.gte is not None:
        where, params = " AND activity_id >= ?", [bounds.gte]
    if bounds.lt is not None and (bounds.lte is None or bounds.lt <= bounds.lte):
        where += " AND activity_id < ?"
        params.append(bounds.lt)
    elif bounds.lte is not None:
        where += " AND activity_id <= ?"
        params.append(bounds.lte)
    return where, params
