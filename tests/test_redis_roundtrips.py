"""Round trips of the Redis backend, counted on the wire.

The client's connections are a ``redis.asyncio.Connection`` subclass that
counts every packet actually sent to the server (one per round trip) and the
commands packed into it, so the counts are the real traffic of each operation.
"""

from __future__ import annotations

import collections
from typing import Any

import pytest
import redis.asyncio
from helpers import REDIS_URL, Like, backends, make_activity

from asyncfeeds import config
from asyncfeeds.aggregators import RecentVerbAggregator
from asyncfeeds.storage.redis.connection import close_client, create_client, get_server
from asyncfeeds.storage.redis.scripts import REGISTRY

REDIS_BACKENDS = backends("redis")
pytestmark = pytest.mark.parametrize("backend", REDIS_BACKENDS, indirect=True)

traffic: collections.Counter[str] = collections.Counter()


class CountingConnection(redis.asyncio.Connection):
    """A real connection that tallies what it sends."""

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        traffic["round trips"] += 1
        await super().send_packed_command(command, check_health)

    def pack_command(self, *args: Any) -> list[bytes]:
        traffic[str(args[0])] += 1
        return super().pack_command(*args)


@pytest.fixture
async def counted(backend):
    """Route the backend's default Redis through counting connections, connected (the
    scripts loaded); yields the tally."""
    config.cached_client(
        "redis",
        "default",
        lambda: create_client(REDIS_URL, connection_class=CountingConnection),
        close_client,
    )
    await get_server("default").run([("PING",)])
    traffic.clear()
    return traffic


def measured(tally: collections.Counter[str]) -> dict[str, int]:
    """Snapshot and reset the tally."""
    snapshot = dict(tally)
    tally.clear()
    return snapshot


async def test_a_new_client_sends_every_script_with_its_first_commands(backend, counted):
    await close_client(get_server("default").client())
    config.forget_client("redis", "default")
    config.cached_client(
        "redis",
        "default",
        lambda: create_client(REDIS_URL, connection_class=CountingConnection),
        close_client,
    )
    feed = backend.feed(max_length=10)(1)
    await feed.add(make_activity(1))
    # every script, then the add, in one round trip: no NOSCRIPT on a script's first use
    assert measured(counted) == {
        "round trips": 1, "SCRIPT": len(REGISTRY), "HSET": 1, "EVALSHA": 1
    }
    await feed.add(make_activity(2))
    assert measured(counted) == {"round trips": 1, "HSET": 1, "EVALSHA": 1}


async def test_add_is_one_round_trip_with_the_activity_data_and_the_trim(backend, counted):
    feed_class = backend.feed(max_length=10)
    measured(counted)
    await feed_class(1).add(make_activity(1))
    assert measured(counted) == {"round trips": 1, "HSET": 1, "EVALSHA": 1}
    assert await feed_class(1).count() == 1


async def test_add_many_with_trim_is_one_round_trip(backend, counted):
    feed = backend.feed(max_length=50)(1)
    await backend.feed()(0).add(make_activity(0))  # the server learns the script
    measured(counted)
    assert await feed.add_many([make_activity(i) for i in range(200)]) == 200
    seen = measured(counted)
    assert seen["round trips"] == 1
    assert seen["EVALSHA"] == 1
    assert await feed.count() == 50


async def test_slice_of_25_is_one_round_trip_on_a_single_server(backend, counted):
    feed = backend.feed(max_length=1000)(1)
    activities = [make_activity(i, extra_context={"n": i}) for i in range(1000)]
    await feed.add_many(activities, trim=False)
    measured(counted)
    page = await feed[:25]
    assert [a.extra_context["n"] for a in page] == list(range(999, 974, -1))
    assert measured(counted) == {"round trips": 1, "EVALSHA": 1}
    oldest_first = await feed.order_by("activity_id")[:3]
    assert [a.extra_context["n"] for a in oldest_first] == [0, 1, 2]


async def test_filtered_slice_is_one_round_trip(backend, counted):
    feed = backend.feed(max_length=100)(1)
    activities = [make_activity(i) for i in range(100)]
    await feed.add_many(activities)
    measured(counted)
    page = await feed.filter(activity_id__lt=activities[50])[:25]
    assert page == activities[49:24:-1]
    assert measured(counted)["round trips"] == 1
    page = await feed.filter(activity_id__gte=activities[50]).order_by("activity_id")[:5]
    assert page == activities[50:55]


async def test_fanout_chunk_of_100_feeds_is_one_round_trip_and_one_command(backend, counted):
    feed_class = backend.feed(max_length=10)
    activity = make_activity(7)
    await feed_class.insert_activity(activity)
    await feed_class(0).add(activity)  # the server learns the script
    measured(counted)
    assert await feed_class.fanout_add(list(range(1, 101)), [activity]) == 100
    seen = measured(counted)
    assert seen == {"round trips": 1, "EVALSHA": 1}
    assert await feed_class.fanout_add(list(range(1, 101)), [activity]) == 0
    measured(counted)
    assert await feed_class.fanout_remove(list(range(1, 101)), [activity]) == 100
    assert measured(counted) == {"round trips": 1, "EVALSHA": 1}


async def test_aggregated_add_is_one_script_call(backend, counted):
    """The default aggregators merge inside one script: no read before the write."""
    feed = backend.feed("aggregated")(1)
    await feed.add(make_activity(1))
    await feed.add(make_activity(2))
    measured(counted)
    await feed.add(make_activity(3))
    assert measured(counted) == {"round trips": 1, "EVALSHA": 1}
    assert (await feed[0]).activity_count == 3


async def test_custom_merge_is_a_read_and_a_commit(backend, counted):
    class KeepAll(RecentVerbAggregator):
        def merge(self, current, activities):
            return super().merge(current, activities)

    feed_class = backend.feed("aggregated", aggregator_class=KeepAll)
    feed = feed_class(1)
    await feed.add(make_activity(1))
    measured(counted)
    await feed.add(make_activity(2))
    assert measured(counted) == {"round trips": 2, "EVALSHA": 2}
    assert (await feed[0]).activity_count == 2


async def test_aggregated_fanout_chunk_of_100_feeds_is_two_round_trips(backend, counted):
    """The newest stored copy of the activity, then one merge script call per feed."""
    feed_class = backend.feed("notification")
    measured(counted)
    added = await feed_class.fanout_add(list(range(100)), [make_activity(1, verb=Like)])
    assert added == 100
    assert measured(counted) == {"round trips": 2, "EVALSHA": 101}
    assert await feed_class.fanout_add(list(range(100)), [make_activity(1, verb=Like)]) == 0


async def test_notification_page_and_counts_round_trips(backend, counted):
    feed = backend.feed("notification")(1)
    await feed.add_many([make_activity(i, verb=Like, object=i) for i in range(30)])
    measured(counted)
    page = await feed[:25]
    assert len(page) == 25 and not any(g.is_seen for g in page)
    assert measured(counted)["round trips"] == 2
    assert await feed.count_unseen() == 30
    assert measured(counted)["round trips"] == 1
    await feed.mark_all(seen=True, read=True)
    assert measured(counted) == {"round trips": 1, "EVALSHA": 1}

