"""The keyspace and tables, created idempotently; later versions only ever add columns.

``setup`` reads ``system_schema`` once per process and table, creates what is
missing and adds missing columns with ``ALTER TABLE ... ADD``; it never drops.
Activities live in the rows as JSON blobs, so a new field on an activity class
needs no schema change at all.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from .connection import CassandraClient, acsylla

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Table:
    """A table's columns (name -> CQL type), primary key and options."""

    columns: tuple[tuple[str, str], ...]
    primary_key: str
    options: str = ""

    def create_cql(self, qualified_name: str) -> str:
        """``CREATE TABLE IF NOT EXISTS`` for this table under ``qualified_name``."""
        columns = ", ".join(f"{name} {cql_type}" for name, cql_type in self.columns)
        options = f" WITH {self.options}" if self.options else ""
        return (
            f"CREATE TABLE IF NOT EXISTS {qualified_name} "
            f"({columns}, PRIMARY KEY {self.primary_key}){options}"
        )


TIMELINE = Table(
    (("feed_key", "text"), ("activity_id", "text")),
    "((feed_key), activity_id)",
    "CLUSTERING ORDER BY (activity_id DESC)",
)
"""One partition per feed, newest first; rows hold ids (written ``USING TIMESTAMP`` of the
call's version, so the last call wins), the data lives in the activities table."""

GROUPS = Table(
    (
        ("feed_key", "text"),
        ("version", "bigint"),
        ("groups", "map<text, blob>"),
        ("scores", "map<text, bigint>"),
        ("unseen", "set<text>"),
        ("unread", "set<text>"),
        ("members", "map<text, text>"),
        ("removed", "map<text, bigint>"),
    ),
    "(feed_key)",
)
"""One row per aggregated feed, so each optimistic commit is one atomic conditional update."""

ACTIVITIES = Table(
    (("prefix", "text"), ("bucket", "bigint"), ("activity_id", "text"), ("data", "blob")),
    "((prefix, bucket), activity_id)",
)
"""Activities by id, partitioned by the hour of their time so no partition grows forever."""

PULLED = Table(
    (("scope", "text"), ("author", "text")),
    "((scope), author)",
)
"""Pulled authors, one partition per user-feed class (few rows: only the largest accounts)."""

REGISTRY = Table(
    (
        ("table_name", "text"),
        ("key_prefix", "text"),
        ("bucket", "int"),
        ("partition_key", "text"),
    ),
    "((table_name, key_prefix, bucket), partition_key)",
)
"""Which partitions each key prefix wrote, so ``flush`` finds them without a table scan."""

REGISTRY_TABLE = "feed_registry"

_ready: set[tuple[str, str, str]] = set()


async def setup(client: CassandraClient, tables: Iterable[tuple[str, Table]]) -> None:
    """Create the keyspace and ``(name, table)`` pairs that are missing; add missing columns."""
    wanted = [(client.table(name).split(".", 1)[1], table) for name, table in tables]
    pending = [(n, t) for n, t in wanted if (client.address, client.keyspace, n) not in _ready]
    if not pending:
        return
    keyspaces = await client.execute(
        "SELECT keyspace_name FROM system_schema.keyspaces WHERE keyspace_name = ?",
        [client.keyspace],
        consistency=acsylla.Consistency.ONE,
    )
    if keyspaces.first() is None:
        logger.info("creating keyspace %s on %s", client.keyspace, client.address)
        await client.execute_schema_change(
            f"CREATE KEYSPACE IF NOT EXISTS {client.keyspace} "
            f"WITH replication = {client.replication_cql}",
        )
    existing: dict[str, set[str]] = {}
    for row in await client.rows(
        "SELECT table_name, column_name FROM system_schema.columns WHERE keyspace_name = ?",
        [client.keyspace],
        consistency=acsylla.Consistency.ONE,
    ):
        existing.setdefault(row["table_name"], set()).add(row["column_name"])
    for name, table in pending:
        qualified = f"{client.keyspace}.{name}"
        if name not in existing:
            logger.info("creating table %s", qualified)
            await client.execute_schema_change(table.create_cql(qualified))
        else:
            for column, cql_type in table.columns:
                if column not in existing[name]:
                    logger.info("adding column %s %s to %s", column, cql_type, qualified)
                    await client.execute_schema_change(
                        f"ALTER TABLE {qualified} ADD {column} {cql_type}"
                    )
        _ready.add((client.address, client.keyspace, name))


def forget() -> None:
    """Forget which tables were checked, so the next ``setup`` reads ``system_schema`` again."""
    _ready.clear()

