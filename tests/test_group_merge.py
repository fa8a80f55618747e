"""The Redis merge script (``ADD_TO_GROUPS``) against the Python read-plan-commit path.

Both paths run the same hostile operations on twin feeds: one with the default merge
rules (merged inside the script), one whose aggregator overrides ``merge`` (planned in
Python). Groups, index entries, markers and return values must come out identical.
"""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import orjson
import pytest
from helpers import BASE_TIME, Like, Pin, backends, make_activity

from asyncfeeds import Activity
from asyncfeeds.aggregators import NotificationAggregator, RecentVerbAggregator
from asyncfeeds.storage.base import IndexEntry
from asyncfeeds.storage.redis.keys import group_keys
from asyncfeeds.versions import next_version

pytestmark = pytest.mark.parametrize("backend", backends("redis", "redis-cluster"), indirect=True)


class PlannedVerb(RecentVerbAggregator):
    """The default rules, planned in Python (an overridden ``merge`` disables the script)."""

    def merge(self, current: Any, activities: Any) -> Any:
        return super().merge(current, activities)


class PlannedNotification(NotificationAggregator):
    def merge(self, current: Any, activities: Any) -> Any:
        return super().merge(current, activities)


def twins(backend: Any, kind: str, **attrs: Any) -> tuple[type, type]:
    planned = PlannedVerb if kind == "aggregated" else PlannedNotification
    return backend.feed(kind, **attrs), backend.feed(kind, aggregator_class=planned, **attrs)


async def state(feed: Any) -> dict[str, Any]:
    """Everything the storage holds of one feed, ids made comparable."""
    storage = feed.get_group_storage()
    keys = group_keys(feed.key)
    groups = await feed[:]
    index = await storage.index_entries(feed.key)
    unseen, unread = await storage.server.run(
        [("SMEMBERS", keys[3]), ("SMEMBERS", keys[4])]
    )
    return {
        "groups": [dump(g) for g in groups],
        "index": {i: (e.aggregated_id, e.actor) for i, e in index.items()},
        "markers": (sorted(unseen), sorted(unread)),
        "count": await feed.count(),
    }


def dump(group: Any) -> Any:
    data = group.model_dump(mode="json", exclude={"is_seen", "is_read"})
    return orjson.dumps(data, option=orjson.OPT_SORT_KEYS)


def at(n: int, *, verb: type = Pin, object: int | None = None, day: int = 0) -> Activity:
    return make_activity(n, verb=verb, object=object, minutes=day * 24 * 60 + n)


@pytest.mark.parametrize("kind", ["aggregated", "notification"])
async def test_shuffled_retried_adds_match_the_planned_path(backend, kind):
    fast_class, slow_class = twins(backend, kind, merge_max_length=3, max_length=6)
    fast, slow = fast_class(1), slow_class(1)
    rng = random.Random(7)
    activities = [
        at(n, verb=rng.choice([Pin, Like]), object=rng.randrange(3), day=rng.randrange(4))
        for n in range(120)
    ]
    rng.shuffle(activities)
    for step in range(80):
        batch = rng.sample(activities, rng.choice([1, 1, 1, 3, 7]))
        version = next_version()
        results = [
            await feed.add_versioned(batch, version) for feed in (fast, slow)
        ]
        assert [dump(g) for g in results[0]] == [dump(g) for g in results[1]], step
        if step % 9 == 0:  # the same call again
            again = [await feed.add_versioned(batch, version) for feed in (fast, slow)]
            assert [dump(g) for g in again[0]] == [dump(g) for g in again[1]], step
        if step % 7 == 3:
            gone = rng.sample(activities, 5)
            removal = next_version()
            for feed in (fast, slow):
                await feed.remove_versioned(gone, removal)
            late = rng.sample(gone, 2)  # an add older than the removal stays out
            assert await fast.add_versioned(late, version) == []
            assert await slow.add_versioned(late, version) == []
    assert await state(fast) == await state(slow)


async def test_an_old_activity_joins_a_full_group_as_minimized(backend):
    fast_class, slow_class = twins(backend, "aggregated")
    for feed_class in (fast_class, slow_class):
        feed = feed_class(1)
        await feed.add_many([at(n) for n in range(100, 120)])
        (group,) = await feed.add(at(1))
        assert (group.activity_count, group.minimized_activities) == (21, 6)
        assert [a.activity_id for a in group.activities] == [
            at(n).activity_id for n in range(105, 120)
        ]
        assert group.updated_at == at(119).time
        assert await feed.add(at(1)) == []
        assert await feed.contains(at(1))
    assert await state(fast_class(1)) == await state(slow_class(1))


async def test_an_expired_activity_is_left_out_and_an_expired_group_not_joined(backend):
    now = BASE_TIME.now(BASE_TIME.tzinfo).replace(microsecond=0)
    attrs = {"activity_ttl": timedelta(hours=1)}
    fast_class, slow_class = twins(backend, "aggregated", **attrs)
    old = Activity(actor=1, verb=Pin, object=1, time=now - timedelta(hours=2))
    fresh = [Activity(actor=1, verb=Pin, object=n, time=now - timedelta(minutes=n))
             for n in range(2, 5)]
    for feed_class in (fast_class, slow_class):
        feed = feed_class(1)
        assert await feed.add(old) == []
        assert len(await feed.add_many(fresh)) == 1
    assert await state(fast_class(1)) == await state(slow_class(1))


async def test_a_group_in_the_older_json_form_is_merged_by_the_planned_path(backend):
    feed_class = backend.feed("aggregated")
    feed = feed_class(1)
    await feed.add(at(1))
    keys = group_keys(feed.key)
    storage = feed.get_group_storage()
    (aggregated_id,) = await storage.server.call("ZRANGE", keys[0], 0, -1)
    group = (await feed[:])[0]
    legacy = orjson.dumps([
        group.group, 1704067260000000, 1704067260000000, None, None, 0,
        [feed_class.get_serializer().to_data(a) for a in group.activities],
    ])
    await storage.server.call("HSET", keys[1], aggregated_id, legacy)
    (changed,) = await feed.add(at(2))
    assert [a.activity_id for a in changed.activities] == [at(1).activity_id, at(2).activity_id]
    stored = await storage.server.call("HGET", keys[1], aggregated_id)
    assert stored.startswith(b"~")


@pytest.mark.parametrize("kind", ["aggregated", "notification"])
async def test_fanout_add_merges_the_newest_stored_copy_like_the_planned_path(backend, kind):
    fast_class, slow_class = twins(backend, kind)
    first = at(1)
    await fast_class.insert_activities([first.model_copy(update={"extra_context": {"v": 2}})])
    counts = []
    for feed_class in (fast_class, slow_class):
        version = next_version()
        counts.append(await feed_class.fanout_add([1, 2, 3], [first, at(2)], version))
        assert await feed_class.fanout_add([1, 2, 3], [first, at(2)], version) == 0
        held = [a for g in await feed_class(2)[:] for a in g.activities]
        assert [a.extra_context for a in held if a == first] == [{"v": 2}]
    assert counts[0] == counts[1] > 0
    for user in (1, 2, 3):
        assert await state(fast_class(user)) == await state(slow_class(user))


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_one_group_shuffled_one_by_one_matches_the_planned_path(backend, seed):
    fast_class, slow_class = twins(backend, "aggregated")
    activities = [at(n) for n in range(60)]
    random.Random(seed).shuffle(activities)
    for activity in activities:
        results = [await feed_class(1).add(activity) for feed_class in (fast_class, slow_class)]
        assert [dump(g) for g in results[0]] == [dump(g) for g in results[1]]
    assert await state(fast_class(1)) == await state(slow_class(1))
    (group,) = await fast_class(1)[:]
    assert group.activity_count == 60


@pytest.mark.parametrize(
    "entry",
    [
        IndexEntry(1796514873024005, "001704240475200000:18-2024-01-03", "68"),
        IndexEntry(1796514873024005, "253402300799000000:5-9999-12-31", "u:1"),
        IndexEntry(7, "no-time", "a b"),
        IndexEntry(9, "001704240475200000:x:y z", ""),
        IndexEntry(12),
    ],
)
def test_index_entries_round_trip_in_every_form(backend, entry):
    text = entry.encode()
    assert IndexEntry.decode(text) == IndexEntry.decode(text.encode()) == entry
    compact = entry.aggregated_id is not None and entry.aggregated_id.startswith("0017")
    assert text.startswith("+") == compact


async def test_index_entries_in_the_older_form_are_still_read(backend):
    feed_class = backend.feed("aggregated")
    feed = feed_class(1)
    old, other = at(1), at(2)
    (group,) = await feed.add(old)
    storage = feed.get_group_storage()
    index = group_keys(feed.key)[5]
    entry = IndexEntry.decode(await storage.server.call("HGET", index, old.activity_id))
    assert entry.aggregated_id == group.aggregated_id
    legacy = f"{entry.version} {len(group.aggregated_id)} {group.aggregated_id}{old.actor}"
    await storage.server.call("HSET", index, old.activity_id, legacy)
    assert await feed.add(old) == []
    assert await feed.contains(old)
    assert await feed.activity_ids_of([old.actor]) == [old.activity_id]
    await feed.add(other)
    assert await feed.remove_many([old]) == 1
    assert not await feed.contains(old)
    assert [a.activity_id for g in await feed[:] for a in g.activities] == [other.activity_id]
