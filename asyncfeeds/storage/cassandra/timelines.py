"""Flat timelines: one partition per feed, rows of activity ids, newest first.

Every add and remove is written ``USING TIMESTAMP <version of the call>``, so
Cassandra's last-write-wins applies the last manager call for an activity
whatever order the jobs arrive in (a removal's tombstone hides an older add).
The activity data lives once in the activities table; a page is hydrated from
it. Trimming reads the ids down to position ``max_length`` and drops the rest
with ONE range tombstone. It runs after the write, so among concurrent writers
the last to read sees every row and the feed never stays above ``max_length``.

A chunk of feeds (fanout) costs a few requests, not a few per feed: the inserts
go as unlogged batches (idempotent, so a retry completes a partial one), and
the presence read (only to count new ids; fanout skips it) and the trim read
are multi-partition ``IN`` queries.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping, Sequence

from ...keys import KeyFormat
from ..base import Bounds, Entry, expiry_cutoff, within_ttl
from . import registry
from .activities import CassandraActivityStorage, seconds_left
from .batches import IN_LIMIT, chunks, write_rows
from .connection import CassandraClient, get_client

TRIM_ROWS = 5000
"""Ids one trim query reads at most (feeds of a chunk share a query while they fit).

Multi-partition reads here are bounded by their ``IN`` lists and limits and run
unpaged: a paged ``IN`` query makes Cassandra read its partitions one by one."""


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
        *,
        count: bool = True,
    ) -> dict[str, int]:
        """New ids per key; with ``count=False`` nothing is read first and the ids
        written per key come back instead (fanout needs no count)."""
        client, table = self._client()
        cutoff = self._cutoff()
        plan = {
            key: sorted({i for i, _ in items if i >= cutoff}, reverse=True)
            for key, items in entries.items()
            if items
        }
        calls: list[Awaitable[object]] = [
            registry.register(client, self.table, self.key_prefix, list(plan)),
        ]
        data = {i: item for items in entries.values() for i, item in items if item}
        if data:
            calls.append(self.activities.add_many(data))
        added, _ = await asyncio.gather(
            self._add_all(client, table, plan, max_length, version, count),
            asyncio.gather(*calls),
        )
        counts = dict.fromkeys(entries, 0)
        counts.update(added)
        return counts

    async def _add_all(
        self,
        client: CassandraClient,
        table: str,
        plan: Mapping[str, Sequence[str]],
        max_length: int | None,
        version: int,
        count: bool,
    ) -> dict[str, int]:
        """Read which ids are held (to count), write as batches, then trim every feed."""
        present = await self._present_many(client, table, plan) if count else {}
        # Entries older than the newest max_length of this very call cannot survive the trim.
        kept = {key: ids if max_length is None else ids[:max_length] for key, ids in plan.items()}
        ttl = self.activities.ttl
        await write_rows(
            client,
            f"INSERT INTO {table} (feed_key, activity_id) VALUES (?, ?) "
            f"USING TIMESTAMP ? AND TTL ?",
            [
                (key, i, version, seconds_left(i, ttl) or 0)
                for key, ids in kept.items()
                for i in ids
            ],
        )
        if max_length is not None:
            await self._trim_many(client, table, list(plan), max_length)
        if not count:
            return {key: len(ids) for key, ids in kept.items()}
        return {
            key: sum(1 for i in ids if i not in present.get(key, ())) for key, ids in plan.items()
        }

    async def remove_many(
        self, entries: Mapping[str, Sequence[str]], version: int, *, count: bool = True
    ) -> dict[str, int]:
        """Delete every id, held or not: the tombstone keeps an older, late add out.

        Removed ids per key; with ``count=False`` nothing is read first and the ids
        deleted per key come back instead.
        """
        client, table = self._client()
        plan = {key: list(dict.fromkeys(ids)) for key, ids in entries.items()}
        present = await self._present_many(client, table, plan) if count else {}
        await write_rows(
            client,
            f"DELETE FROM {table} USING TIMESTAMP ? WHERE feed_key = ? AND activity_id IN ?",
            [(version, key, list(c)) for key, ids in plan.items() for c in chunks(ids)],
        )
        if not count:
            return {key: len(plan[key]) for key in entries}
        return {key: len(present.get(key, ())) for key in entries}

    async def trim(self, key: str, length: int) -> None:
        client, table = self._client()
        await self._trim_many(client, table, [key], length)

    async def _trim_many(
        self, client: CassandraClient, table: str, keys: Sequence[str], length: int
    ) -> None:
        """Cut each feed to its newest ``length`` ids: one read per chunk of feeds, and
        ONE range tombstone per feed that is longer."""
        if not keys:
            return
        if length == 0:
            await write_rows(client, f"DELETE FROM {table} WHERE feed_key = ?", [[k] for k in keys])
            return
        select = (
            f"SELECT feed_key, activity_id FROM {table} WHERE feed_key IN ? PER PARTITION LIMIT ?"
        )
        per_query = min(max(1, TRIM_ROWS // (length + 1)), IN_LIMIT)
        queries = -(-len(keys) // per_query)
        results = await asyncio.gather(
            *(
                client.execute(select, [list(c), length + 1])
                for c in chunks(keys, -(-len(keys) // queries))
            )
        )
        held: dict[str, int] = {}
        oldest_kept: dict[str, str] = {}
        for result in results:
            for row in result:  # up to length + 1 rows a feed: tuples, the fastest access
                key, activity_id = row.as_tuple()
                held[key] = position = held.get(key, 0) + 1
                if position == length:
                    oldest_kept[key] = activity_id
        await write_rows(
            client,
            f"DELETE FROM {table} WHERE feed_key = ? AND activity_id < ?",
            [(key, oldest_kept[key]) for key, n in held.items() if n > length],
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

    async def _present(
        self, client: CassandraClient, table: str, key: str, ids: Sequence[str]
    ) -> set[str]:
        return (await self._present_many(client, table, {key: ids})).get(key, set())

    @staticmethod
    async def _present_many(
        client: CassandraClient, table: str, plan: Mapping[str, Sequence[str]]
    ) -> dict[str, set[str]]:
        """The ids of ``plan`` each feed holds: feeds asking the same ids share queries."""
        by_ids: dict[tuple[str, ...], list[str]] = {}
        for key, ids in plan.items():
            if ids:
                by_ids.setdefault(tuple(ids), []).append(key)
        select = (
            f"SELECT feed_key, activity_id FROM {table} "
            f"WHERE feed_key IN ? AND activity_id IN ?"
        )
        results = await asyncio.gather(
            *(
                client.execute(select, [list(k), list(i)])
                for ids, keys in by_ids.items()
                for i in chunks(ids)
                for k in chunks(keys, max(1, IN_LIMIT // len(i)))
            )
        )
        present: dict[str, set[str]] = {}
        for result in results:
            for row in result:
                present.setdefault(row["feed_key"], set()).add(row["activity_id"])
        return present


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
