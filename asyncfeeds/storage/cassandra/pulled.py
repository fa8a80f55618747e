"""Pulled authors on Cassandra: one partition per user-feed class (``pulled_authors`` table)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from .batches import chunks
from .connection import CassandraClient, get_client


class CassandraPulledStorage:
    """Rows ``(scope, author)``; membership of many authors by ``IN`` lists, concurrently."""

    def __init__(self, cluster: str, table: str) -> None:
        self.cluster = cluster
        self.table = table

    def _client(self) -> tuple[CassandraClient, str]:
        client = get_client(self.cluster)
        return client, client.table(self.table)

    async def add(self, scope: str, author: str) -> None:
        client, table = self._client()
        await client.execute(f"INSERT INTO {table} (scope, author) VALUES (?, ?)", [scope, author])

    async def contains_many(self, scope: str, authors: Sequence[str]) -> list[bool]:
        if not authors:
            return []
        client, table = self._client()
        select = f"SELECT author FROM {table} WHERE scope = ? AND author IN ?"
        unique = list(dict.fromkeys(authors))
        results = await asyncio.gather(
            *(client.execute(select, [scope, list(c)]) for c in chunks(unique))
        )
        found = {row["author"] for result in results for row in result}
        return [author in found for author in authors]

    async def flush(self, scope: str) -> None:
        client, table = self._client()
        await client.execute(f"DELETE FROM {table} WHERE scope = ?", [scope])
