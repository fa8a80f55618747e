"""Cassandra schema: setup creates, re-runs without harm, adds missing columns, never drops.

Each test works in a keyspace of its own (dropped afterwards), so it sees
``setup`` start from nothing.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator
from typing import Any

import acsylla
import pytest
from helpers import CASSANDRA_PORT, make_activity

import asyncfeeds
from asyncfeeds import Activity, CassandraAggregatedFeed, CassandraFeed, CassandraNotificationFeed
from asyncfeeds.storage.cassandra import schema

pytestmark = pytest.mark.cassandra


class Keyspace:
    """A fresh keyspace configured as the Cassandra cluster ``name``, with a raw session."""

    def __init__(self, session: acsylla.Session) -> None:
        self.name = f"af_schema_{uuid.uuid4().hex[:10]}"
        self.cluster = f"schema-{self.name}"
        self.session = session

    async def query(self, cql: str, *params: Any) -> list[dict[str, Any]]:
        """Rows of a statement, ``{ks}`` standing for this keyspace."""
        cql = cql.format(ks=self.name)
        if params:
            statement = (await self.session.create_prepared(cql))(list(params))
        else:
            statement = acsylla.create_statement(cql)
        return [row.as_dict() for row in await self.session.execute(statement)]

    async def tables(self) -> dict[str, set[str]]:
        """Column names by table name."""
        rows = await self.query(
            "SELECT table_name, column_name FROM system_schema.columns WHERE keyspace_name = ?",
            self.name,
        )
        found: dict[str, set[str]] = {}
        for row in rows:
            found.setdefault(row["table_name"], set()).add(row["column_name"])
        return found

    def bind(self, base: type, **attrs: Any) -> type:
        """A feed class on this keyspace's cluster name."""
        attrs.setdefault("key_format", f"{self.name}:{{user_id}}")
        return type(f"Schema{base.__name__}", (base,), {"cassandra_cluster": self.cluster, **attrs})


@pytest.fixture
async def keyspace() -> AsyncIterator[Keyspace]:
    cluster = acsylla.create_cluster(["127.0.0.1"], port=CASSANDRA_PORT, log_level="critical")
    session = await cluster.create_session()
    space = Keyspace(session)
    asyncfeeds.configure(
        cassandra={space.cluster: {"port": CASSANDRA_PORT, "keyspace": space.name,
                                   "consistency": "ONE"}}
    )
    try:
        yield space
    finally:
        await asyncfeeds.aclose()
        asyncfeeds.config.reset()
        schema.forget()
        await space.query("DROP KEYSPACE IF EXISTS {ks}")
        await session.close()


async def test_setup_creates_the_keyspace_and_tables_and_can_run_again(keyspace):
    classes = [keyspace.bind(c) for c in (CassandraFeed, CassandraAggregatedFeed,
                                            CassandraNotificationFeed)]
    await asyncfeeds.setup(*classes)
    tables = await keyspace.tables()
    assert tables == {
        "timelines": {"feed_key", "activity_id"},
        "aggregated_feeds": {
            "feed_key", "version", "groups", "scores", "unseen", "unread", "members", "removed"
        },
        "activities": {"prefix", "bucket", "activity_id", "data"},
        "feed_registry": {"table_name", "key_prefix", "bucket", "partition_key"},
        "pulled_authors": {"scope", "author"},  # a flat class may be a manager's user feed
    }
    (replication,) = await keyspace.query(
        "SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = ?", keyspace.name
    )
    assert replication["replication"]["class"].endswith("SimpleStrategy")
    assert replication["replication"]["replication_factor"] == "1"

    feed = classes[0](1)
    await feed.add(make_activity(1))
    schema.forget()  # as a new process would: read system_schema again
    await asyncfeeds.setup(*classes)
    await asyncfeeds.setup(*classes)
    assert await keyspace.tables() == tables
    assert [a.activity_id for a in await feed[:]] == [make_activity(1).activity_id]


async def test_a_class_may_have_tables_of_its_own(keyspace):
    own = keyspace.bind(CassandraFeed, timeline_table="pin_timelines", activity_table="pins")
    await asyncfeeds.setup(own)
    assert {"pin_timelines", "pins", "feed_registry"} <= set(await keyspace.tables())
    assert await own(1).add(make_activity(1)) == 1
    rows = await keyspace.query("SELECT feed_key FROM {ks}.pin_timelines")
    assert rows == [{"feed_key": own.feed_key(1)}]


async def test_setup_adds_missing_columns_and_keeps_the_rows(keyspace):
    """A table from an older schema (no ``unread`` column yet) is completed, not recreated."""
    await keyspace.query(
        "CREATE KEYSPACE {ks} WITH replication = "
        "{{'class': 'SimpleStrategy', 'replication_factor': 1}}"
    )
    await keyspace.query(
        "CREATE TABLE {ks}.old_groups (feed_key text PRIMARY KEY, version bigint, "
        "groups map<text, blob>, scores map<text, bigint>, unseen set<text>)"
    )
    await keyspace.query(
        "INSERT INTO {ks}.old_groups (feed_key, version, scores) VALUES (?, ?, ?)",
        "kept", 7, {"g": 1},
    )
    feed_class = keyspace.bind(CassandraNotificationFeed, group_table="old_groups")
    await asyncfeeds.setup(feed_class)
    assert "unread" in (await keyspace.tables())["old_groups"]
    (row,) = await keyspace.query("SELECT version, scores, unread FROM {ks}.old_groups")
    assert row == {"version": 7, "scores": {"g": 1}, "unread": None}

    feed = feed_class(1)
    await feed.add(make_activity(1))
    assert (await feed.count_unseen(), await feed.count_unread()) == (1, 1)


class PinActivity(Activity):
    board_id: int


class PinActivityWithNote(Activity):
    board_id: int
    note: str | None = None


async def test_a_new_optional_field_needs_no_migration(keyspace):
    """Rows hold JSON, so old rows read under the grown class with the field's default."""
    before = keyspace.bind(CassandraFeed, activity_class=PinActivity)
    after = keyspace.bind(CassandraFeed, activity_class=PinActivityWithNote)
    await asyncfeeds.setup(before)
    old = make_activity(1, activity_class=PinActivity, board_id=3)
    await before(1).add(old)
    columns = await keyspace.tables()

    await asyncfeeds.setup(after)
    assert await keyspace.tables() == columns
    new = make_activity(2, activity_class=PinActivityWithNote, board_id=4, note="hi")
    await after(1).add(new)
    items = await after(1)[:]
    assert [(type(a), a.board_id, a.note) for a in items] == [
        (PinActivityWithNote, 4, "hi"),
        (PinActivityWithNote, 3, None),
    ]


async def test_replication_is_configurable_and_checked_before_anything_is_written(keyspace):
    asyncfeeds.configure(
        cassandra={keyspace.cluster: {
            "port": CASSANDRA_PORT, "keyspace": keyspace.name,
            "replication": {"class": "SimpleStrategy", "replication_factor": "1'}; DROP"},
        }}
    )
    with pytest.raises(ValueError, match="replication"):
        await asyncfeeds.setup(keyspace.bind(CassandraFeed))
    asyncfeeds.configure(
        cassandra={keyspace.cluster: {"port": CASSANDRA_PORT, "keyspace": "bad-name"}}
    )
    with pytest.raises(ValueError, match="keyspace name"):
        await asyncfeeds.setup(keyspace.bind(CassandraFeed))
    assert await keyspace.tables() == {}

    asyncfeeds.configure(
        cassandra={keyspace.cluster: {
            "port": CASSANDRA_PORT, "keyspace": keyspace.name,
            "replication": {"class": "NetworkTopologyStrategy", "datacenter1": 1},
        }}
    )
    await asyncfeeds.setup(keyspace.bind(CassandraFeed))
    (row,) = await keyspace.query(
        "SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = ?", keyspace.name
    )
    assert row["replication"]["datacenter1"] == "1"


async def test_setup_on_the_command_line(keyspace, tmp_path):
    env = {
        **os.environ,
        "ASYNCFEEDS_CASSANDRA_PORT": str(CASSANDRA_PORT),
        "ASYNCFEEDS_CASSANDRA_KEYSPACE": keyspace.name,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "asyncfeeds.cli", "setup", "--feeds", "asyncfeeds:CassandraFeed",
        "--feeds", "asyncfeeds:CassandraNotificationFeed",
        env=env, cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    assert b"set up 2 feed classes" in out
    assert {
        "timelines", "aggregated_feeds", "activities", "feed_registry", "pulled_authors"
    } == set(await keyspace.tables())
