"""Cassandra storage: trims, slices, fanout, flush, optimistic commits, consistency, failures.

Rows are checked with raw CQL on a separate acsylla session, not through the
storage under test.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import acsylla
import orjson
import pytest
from helpers import (
    CASSANDRA_KEYSPACE,
    CASSANDRA_PORT,
    REDIS_URL,
    Like,
    backends,
    make_activity,
)

import asyncfeeds
from asyncfeeds import (
    AsyncFeedsError,
    CassandraAggregatedFeed,
    CassandraFeed,
    CassandraNotificationFeed,
    StorageUnavailableError,
)
from asyncfeeds.cassandra_settings import ConsistencyWarning
from asyncfeeds.storage.base import Bounds, GroupQuery, GroupWrite
from asyncfeeds.storage.cassandra.connection import CassandraSchemaError
from asyncfeeds.storage.redis import get_server
from asyncfeeds.storage.redis.notifier import channel

pytestmark = pytest.mark.parametrize("backend", backends("cassandra"), indirect=True)

GIVE_UP = 10  # seconds: an unreachable cluster must raise well before this, never hang
Query = Callable[..., Awaitable[list[dict[str, Any]]]]


@pytest.fixture
async def raw() -> AsyncIterator[Query]:
    """``await raw(cql, *params)``: rows of a prepared query on an independent session."""
    cluster = acsylla.create_cluster(["127.0.0.1"], port=CASSANDRA_PORT, log_level="critical")
    session = await cluster.create_session()

    async def query(cql: str, *params: Any) -> list[dict[str, Any]]:
        prepared = await session.create_prepared(cql.format(ks=CASSANDRA_KEYSPACE))
        result = await session.execute(prepared(list(params), page_size=10_000))
        return [row.as_dict() for row in result]

    yield query
    await session.close()


async def stored_ids(raw: Query, key: str) -> list[str]:
    rows = await raw("SELECT activity_id FROM {ks}.timelines WHERE feed_key = ?", key)
    return [row["activity_id"] for row in rows]


def newest(activities, n: int) -> list[str]:
    return sorted((a.activity_id for a in activities), reverse=True)[:n]


def closed_port() -> int:
    """A loopback port nobody listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def test_trim_leaves_exactly_max_length_rows(backend, raw):
    feed = backend.feed(max_length=10)(1)
    activities = [make_activity(i) for i in range(25)]
    await feed.add_many(activities[:8])
    await feed.add_many(activities[8:20])
    await feed.add(activities[20])
    await asyncio.gather(*(feed.add(a) for a in activities[21:]))
    assert await stored_ids(raw, feed.key) == newest(activities, 10)

    await feed.trim(4)
    assert await stored_ids(raw, feed.key) == newest(activities, 4)
    assert await feed.count() == 4
    await feed.trim(0)
    assert await stored_ids(raw, feed.key) == []


async def test_concurrent_adds_never_leave_a_feed_above_max_length(backend, raw):
    feed = backend.feed(max_length=10)(1)
    activities = [make_activity(i) for i in range(40)]
    added = await asyncio.gather(*(feed.add(a) for a in reversed(activities)))
    assert added == [1] * 40
    assert await stored_ids(raw, feed.key) == newest(activities, 10)


async def test_add_many_without_trim_keeps_everything(backend, raw):
    feed = backend.feed(max_length=5)(1)
    activities = [make_activity(i) for i in range(12)]
    assert await feed.add_many(activities, trim=False) == 12
    assert len(await stored_ids(raw, feed.key)) == 12
    await feed.trim()
    assert await stored_ids(raw, feed.key) == newest(activities, 5)


async def test_re_adding_replaces_the_stored_data_in_place(backend):
    feed = backend.feed()(1)
    first, other = make_activity(1), make_activity(2)
    changed = first.model_copy(update={"extra_context": {"title": "edited"}})
    assert changed.activity_id == first.activity_id
    assert await feed.add_many([first, other]) == 2
    assert await feed.add(changed) == 0
    items = await feed[:]
    assert [a.activity_id for a in items] == newest([first, other], 2)
    assert items[1].extra_context == {"title": "edited"}


async def test_slices_follow_every_combination_of_bounds_and_order(backend):
    feed = backend.feed()(1)
    activities = [make_activity(i) for i in range(10)]
    await feed.add_many(activities)
    ids = sorted(a.activity_id for a in activities)
    cases = [
        {"activity_id__gt": ids[2], "activity_id__gte": ids[4]},
        {"activity_id__gt": ids[5], "activity_id__gte": ids[3]},
        {"activity_id__lt": ids[8], "activity_id__lte": ids[6]},
        {"activity_id__lt": ids[6], "activity_id__lte": ids[8]},
        {"activity_id__gte": ids[3], "activity_id__lte": ids[3]},
        {"activity_id__gt": ids[7], "activity_id__lt": ids[2]},
    ]
    for filters in cases:
        bounds = Bounds(**{k.removeprefix("activity_id__"): v for k, v in filters.items()})
        expected = [i for i in ids if bounds.admits(i)]
        for ordering, order in (("activity_id", expected), ("-activity_id", expected[::-1])):
            view = feed.filter(**filters).order_by(ordering)
            assert [a.activity_id for a in await view[:]] == order, (filters, ordering)
            assert [a.activity_id for a in await view[1:3]] == order[1:3], (filters, ordering)


async def test_fanout_writes_and_removes_a_chunk_of_feeds(backend, raw):
    feed_class = backend.feed(max_length=3)
    users = list(range(250))
    old = [make_activity(i) for i in range(3)]
    await feed_class.fanout_add(users[:100], old)
    activity = make_activity(10)
    assert await feed_class.fanout_add(users, [activity]) == 250
    assert await feed_class.fanout_add(users, [activity]) == 0
    for user in (0, 99, 100, 249):
        expected = newest([*old, activity], 3) if user < 100 else [activity.activity_id]
        assert await stored_ids(raw, feed_class.feed_key(user)) == expected
    assert await feed_class.fanout_remove(users, [activity]) == 250
    assert await stored_ids(raw, feed_class.feed_key(249)) == []
    assert await stored_ids(raw, feed_class.feed_key(0)) == newest(old, 2)


async def test_uncounted_fanout_writes_and_trims_like_the_counted_one(backend, raw):
    feed_class = backend.feed(max_length=3)
    users = list(range(150))
    old = [make_activity(i) for i in range(3)]
    await feed_class.fanout_add(users[:50], old)
    activity = make_activity(10)
    # count=False (the manager's fanout) reads nothing first: it says what it wrote
    assert await feed_class.fanout_add(users, [activity], count=False) == 150
    assert await feed_class.fanout_add(users, [activity], count=False) == 150
    for user in (0, 49, 50, 149):
        expected = newest([*old, activity], 3) if user < 50 else [activity.activity_id]
        assert await stored_ids(raw, feed_class.feed_key(user)) == expected
        assert await feed_class(user).count() == len(expected)
    # a removal with a newer version keeps an older, late uncounted add out
    assert await feed_class.fanout_remove(users, [activity], version=10**18, count=False) == 150
    await feed_class.fanout_add(users, [activity], version=10**18 - 1, count=False)
    assert await stored_ids(raw, feed_class.feed_key(149)) == []
    assert await stored_ids(raw, feed_class.feed_key(0)) == newest(old, 2)
    # and a newer add brings it back, counted again
    assert await feed_class.fanout_add(users[:2], [activity], version=10**18 + 1) == 2
    assert await feed_class.fanout_remove(users[:2], [activity], version=10**18 + 2) == 2


async def test_a_trim_of_many_feeds_reads_them_in_shared_queries(backend, raw):
    feed_class = backend.feed(max_length=2)
    users = list(range(120))
    activities = [make_activity(i) for i in range(4)]
    for activity in activities:  # longer than max_length without trimming
        await feed_class.fanout_add(users, [activity])
    storage = feed_class.get_timeline_storage()
    for user in (0, 119):
        await feed_class(user).add_many([make_activity(9)], trim=False)
    keys = [feed_class.feed_key(u) for u in users]
    await storage.add_many({k: [] for k in keys}, 2, 1)  # nothing to add: nothing trimmed
    assert len(await stored_ids(raw, keys[0])) == 3
    await asyncio.gather(*(feed_class(u).trim(1) for u in (0, 119)))
    for key in (keys[0], keys[119]):
        assert await stored_ids(raw, key) == [make_activity(9).activity_id]
    assert await stored_ids(raw, keys[60]) == newest(activities, 2)


async def test_flush_removes_only_its_own_class(backend, raw):
    mine, other = backend.feed(), backend.feed()
    await asyncio.gather(*(mine(u).add(make_activity(u)) for u in range(30)))
    await other(1).add(make_activity(1))
    await mine.flush()
    rows = await raw(
        "SELECT feed_key FROM {ks}.timelines WHERE feed_key IN ?",
        [mine.feed_key(u) for u in range(30)],
    )
    assert rows == []
    assert await stored_ids(raw, other.feed_key(1)) == [make_activity(1).activity_id]
    assert await mine(3).count() == 0
    await mine(3).add(make_activity(3))  # a flushed class registers its feeds again
    await mine.flush()
    assert await stored_ids(raw, mine.feed_key(3)) == []


async def test_activity_storage_spans_hour_partitions(backend):
    feed_class = backend.feed()
    activities = [make_activity(i, minutes=i * 50) for i in range(6)]  # five hours
    await feed_class.insert_activities(activities)
    storage = feed_class.get_activity_storage()
    wanted = [activities[4].activity_id, "unknown", activities[0].activity_id]
    found = await storage.get_many(wanted)
    assert found[1] is None
    assert [feed_class.get_serializer().loads(found[i]) for i in (0, 2)] == [
        activities[4],
        activities[0],
    ]
    await feed_class.remove_activity(activities[4])
    assert (await storage.get_many([activities[4].activity_id]))[0] is None
    await storage.flush()
    assert await storage.get_many([a.activity_id for a in activities]) == [None] * 6


async def test_a_commit_on_a_stale_version_is_refused(backend):
    feed_class = backend.feed("aggregated")
    storage = feed_class.get_group_storage()
    key = feed_class.feed_key(1)

    def write(snapshot, group: str) -> GroupWrite:
        return GroupWrite(key, snapshot.version, [(group, 1, b"[]")], (), None)

    (before,) = await storage.read_many([key], GroupQuery())
    assert await storage.commit_many([write(before, "a")], False) == [True]
    assert await storage.commit_many([write(before, "b")], False) == [False]
    await storage.delete_many([key])
    (empty,) = await storage.read_many([key], GroupQuery())
    assert await storage.commit_many([write(empty, "c")], False) == [True]
    assert await storage.commit_many([write(before, "d")], False) == [False]
    (after,) = await storage.read_many([key], GroupQuery())
    assert [group for group, _ in after.groups] == ["c"]


async def test_marks_and_deletes_are_conditional_writes_too(backend):
    feed = backend.feed("notification")(1)
    await feed.add_many([make_activity(i, verb=Like, object=i) for i in range(4)])
    groups = await feed[:]
    await asyncio.gather(
        *(feed.mark_activity(g.aggregated_id, read=True) for g in groups),
        feed.add(make_activity(9, verb=Like, object=9)),
    )
    assert await feed.count_unseen() == 1
    assert await feed.count_unread() == 1
    await feed.delete()
    assert (await feed.count(), await feed.count_unseen()) == (0, 0)


async def test_consistency_level_is_honoured(backend, raw):
    with pytest.warns(ConsistencyWarning, match="every request fails"):
        asyncfeeds.configure(
            cassandra={"three": {"port": CASSANDRA_PORT, "keyspace": CASSANDRA_KEYSPACE,
                                 "consistency": "THREE"}}
        )
    feed = backend.feed(cassandra_cluster="three")(1)
    with pytest.raises(StorageUnavailableError, match="consistency level THREE"):
        await feed.add(make_activity(1))
    assert await stored_ids(raw, feed.key) == []
    aggregated = backend.feed("aggregated", cassandra_cluster="three")(1)
    with pytest.raises(StorageUnavailableError, match="THREE"):
        await aggregated.add(make_activity(1))

    asyncfeeds.configure(
        cassandra={"three": {"port": CASSANDRA_PORT, "keyspace": CASSANDRA_KEYSPACE,
                             "consistency": "local_quorum"}}
    )
    assert await feed.add(make_activity(1)) == 1

    with pytest.raises(ValueError, match="SOMETIMES"):  # refused before anything is used
        asyncfeeds.configure(cassandra={"bad": {"consistency": "SOMETIMES"}})


async def test_unreachable_cluster_raises_storage_unavailable_naming_the_address(backend):
    port = closed_port()
    asyncfeeds.configure(cassandra={"down": {"hosts": ["127.0.0.1"], "port": port}})
    down = {"cassandra_cluster": "down"}  # classes the fixture does not flush afterwards
    flat = type("DownFeed", (CassandraFeed,), down)(1)
    aggregated = type("DownAggregated", (CassandraAggregatedFeed,), down)(1)
    notification = type("DownNotification", (CassandraNotificationFeed,), down)(1)
    attempts = [
        lambda: flat.add(make_activity(1)),
        lambda: flat[:25],
        lambda: aggregated.add(make_activity(1)),
        lambda: notification.count_unseen(),
        lambda: asyncfeeds.setup(type(flat)),
    ]
    for attempt in attempts:
        with pytest.raises(StorageUnavailableError, match=f"127.0.0.1:{port}"):
            await asyncio.wait_for(attempt(), GIVE_UP)


async def test_a_missing_table_says_to_run_setup(backend):
    feed = type("Unset", (CassandraFeed,), {"timeline_table": "never_set_up"})(1)
    with pytest.raises(CassandraSchemaError, match=r"asyncfeeds.setup") as error:
        await feed.add(make_activity(1))
    assert isinstance(error.value, AsyncFeedsError)


async def test_bad_table_names_are_rejected_before_anything_is_sent(backend):
    feed = type("Bad", (CassandraFeed,), {"timeline_table": "timelines; DROP TABLE x"})(1)
    with pytest.raises(ValueError, match="table name"):
        await feed.add(make_activity(1))


async def test_subscribe_with_an_unreachable_redis_says_why(backend):
    address = f"127.0.0.1:{closed_port()}"
    asyncfeeds.configure(redis={"default": f"redis://{address}"})
    feed = backend.feed("notification")(1)
    stream = feed.subscribe()
    with pytest.raises(StorageUnavailableError, match=f"Redis pub/sub.*{address}"):
        await asyncio.wait_for(anext(stream), GIVE_UP)
    await stream.aclose()


async def test_notification_counts_are_published_to_redis_after_each_change(backend):
    asyncfeeds.configure(redis={"default": REDIS_URL})
    feed = backend.feed("notification")(1)
    pubsub, _ = get_server("default").pubsub()
    await pubsub.subscribe(channel(feed.key))
    assert (await pubsub.get_message(timeout=GIVE_UP))["type"] == "subscribe"
    await feed.add(make_activity(1, verb=Like))
    await feed.mark_all(seen=True)
    received = []
    while len(received) < 2:
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=GIVE_UP)
        assert message is not None
        received.append(orjson.loads(message["data"]))
    await pubsub.aclose()
    assert [m["counts"] for m in received] == [
        {"unseen_count": 1, "unread_count": 1},
        {"unseen_count": 0, "unread_count": 1},
    ]

