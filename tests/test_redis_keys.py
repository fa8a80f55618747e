"""Redis keys: one hash tag (one cluster slot) per feed, activity shards spread, flush finds all."""

from __future__ import annotations

import pytest
from helpers import Like, backends, make_activity
from redis.crc import key_slot

from asyncfeeds.storage.redis import get_server
from asyncfeeds.storage.redis.keys import ACTIVITY_SHARDS, activity_bucket, feed_key_pattern

REDIS_BACKENDS = backends("redis", "redis-cluster")
pytestmark = pytest.mark.parametrize("backend", REDIS_BACKENDS, indirect=True)


def slot(key: str) -> int:
    return key_slot(key.encode())


async def keys_of(feed_class) -> list[str]:
    """Every Redis key of every feed of a class (all nodes of a cluster)."""
    return await get_server("default").scan(feed_key_pattern(feed_class.key_prefix()))


async def test_all_keys_of_one_feed_share_one_slot(backend):
    flat = backend.feed()
    notification = backend.feed("notification")
    for user_id in range(1, 6):
        await flat(user_id).add(make_activity(user_id))
        feed = notification(user_id)
        await feed.add_many([make_activity(1, verb=Like), make_activity(2, verb=Like, object=9)])
        await feed.mark_activity((await feed[0]).aggregated_id, seen=True)
    flat_keys = await keys_of(flat)
    assert len(flat_keys) == 10 and {k.rsplit(":", 1)[1] for k in flat_keys} == {"tl", "tv"}
    notification_keys = await keys_of(notification)
    assert {k.rsplit(":", 1)[1] for k in notification_keys} == {
        "scores", "groups", "v", "unseen", "unread", "gx"
    }
    for feed_class, keys in ((flat, flat_keys), (notification, notification_keys)):
        for user_id in range(1, 6):
            tag = "{" + feed_class.feed_key(user_id) + "}"
            own = [k for k in keys if k.startswith(tag)]
            assert own and {slot(k) for k in own} == {slot(tag)}
        assert len({slot(k) for k in keys}) == 5  # different feeds spread


async def test_activity_hashes_by_time_bucket_spread_over_slots_and_flush_removes_them(backend):
    feed_class = backend.feed(max_length=500)
    activities = [make_activity(n) for n in range(300)]  # five hours: two or three buckets
    await feed_class(1).add_many(activities)
    storage = feed_class.get_activity_storage()
    data_keys = [k for k in await storage.keys() if k.endswith(":a")]
    buckets = {activity_bucket(a.activity_id) for a in activities}
    assert {k.split(":")[-3] for k in data_keys} == buckets
    assert len(data_keys) == len(buckets) * ACTIVITY_SHARDS
    assert len({slot(k) for k in data_keys}) > len(data_keys) // 2
    if backend.name == "redis-cluster":
        client = get_server("default").client()
        assert len({client.get_node_from_key(k).name for k in data_keys}) == 3
    assert len(await storage.get_many([a.activity_id for a in activities])) == 300
    assert await storage.count() == 300
    await feed_class.flush()
    assert await keys_of(feed_class) == []
    assert await storage.keys() == []


async def test_flush_of_one_class_leaves_other_prefixes(backend):
    first = backend.feed()
    second = backend.feed("aggregated")
    await first(1).add(make_activity(1))
    await second(1).add(make_activity(1))
    await second.get_group_storage().flush(first.key_shape())
    await first.get_timeline_storage().flush(second.key_shape())
    assert await first(1).count() == 1 and await second(1).count() == 1
    await second.flush()
    assert await keys_of(second) == [] and await first(1).count() == 1

