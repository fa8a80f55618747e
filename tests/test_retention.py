"""API.md "Retention": TTLs, data released with the last feed holding it, removals that
delete the data once they are fanned out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from arq.connections import ArqRedis
from helpers import REDIS_URL, Backend, Like, Pin, backends

from asyncfeeds import Activity, FanoutPriority, Manager
from asyncfeeds.fanout import create_queue
from asyncfeeds.fanout.queue import queue_settings
from asyncfeeds.worker import create_worker

HIGH = FanoutPriority.HIGH
COUNTS_REFERENCES = ("memory", "redis")
"""Backends releasing data with the last timeline holding it (see the README's Retention)."""


def recent(
    n: int, *, seconds_ago: float = 0.0, verb: type = Pin, object: int | None = None
) -> Activity:
    """Activity ``n`` a little before now, so TTLs apply to it."""
    when = datetime.now(UTC) - timedelta(seconds=seconds_ago) + timedelta(microseconds=n)
    return Activity(actor=n, verb=verb, object=n if object is None else object, time=when)


def old(n: int, *, actor: int = 1) -> Activity:
    return Activity(actor=actor, verb=Pin, object=n,
                    time=datetime(2024, 1, 1, tzinfo=UTC) + timedelta(minutes=n))


async def stored(feed_class: Any, activities: list[Activity]) -> int:
    """How many of the activities have data in the feed class's activity storage."""
    data = await feed_class.get_activity_storage().get_many([a.activity_id for a in activities])
    return sum(d is not None for d in data)


@pytest.mark.parametrize("backend", backends(*COUNTS_REFERENCES), indirect=True)
async def test_a_trimmed_then_deleted_feed_leaves_no_activity_data(backend: Backend) -> None:
    feed_class = backend.feed(max_length=1000)
    activities = [old(n) for n in range(100)]
    await feed_class(1).add_many(activities)
    await feed_class(2).add_many(activities[:5])  # another feed holds five of them
    await feed_class(1).trim(10)
    assert await stored(feed_class, activities) == 10 + 5
    await feed_class(1).delete()
    assert await stored(feed_class, activities) == 5
    await feed_class(2).remove_many(activities[:2])
    await feed_class(2).add_many([activities[2]])  # held already: nothing changes
    assert await stored(feed_class, activities) == 3
    await feed_class(2).delete()
    assert await feed_class.get_activity_storage().count() == 0


@pytest.mark.parametrize("backend", backends(*COUNTS_REFERENCES), indirect=True)
async def test_a_fanout_that_trims_what_it_just_added_counts_every_holder(
    backend: Backend,
) -> None:
    """One batch holds an activity for many feeds and lets full ones drop it at once."""
    feed_class = backend.feed(max_length=2)
    newer = [old(n) for n in (50, 51)]
    oldest = old(1)
    for user in (1, 2, 3):
        await feed_class(user).add_many(newer)
    await feed_class.insert_activities([oldest])
    assert await feed_class.fanout_add([1, 2, 3], [oldest]) == 3  # each trims it at once
    assert await stored(feed_class, [oldest]) == 0
    await feed_class.insert_activities([oldest])
    assert await feed_class.fanout_add([1, 4, 2, 5], [oldest]) == 4  # two feeds keep it
    assert await stored(feed_class, [oldest]) == 1
    await feed_class(4).delete()
    assert await stored(feed_class, [oldest]) == 1
    await feed_class(5).remove(oldest)
    assert await stored(feed_class, [oldest]) == 0


def make_manager(backend: Backend, followers: list[int], **attrs: Any) -> Any:
    feeds = {"flat": backend.feed("flat", max_length=100)}
    table = {1: {HIGH: followers}}

    async def get_user_follower_ids(self: Manager, user_id: Any) -> Any:
        return table.get(user_id, {})

    return type("RetentionManager", (Manager,), {
        "feed_classes": feeds,
        "user_feed_class": backend.feed("flat", max_length=100),
        "get_user_follower_ids": get_user_follower_ids,
        "queue_names": {p: f"r{backend.run_id}:{p.value}" for p in FanoutPriority},
        **attrs,
    })


async def referenced(manager: Manager, users: list[int]) -> set[str]:
    """Every activity id any feed of the manager still holds."""
    ids: set[str] = set()
    for feed in [manager.get_user_feed(1), *(manager.get_feeds(u)["flat"] for u in users)]:
        ids.update([a.activity_id async for a in feed])
    return ids


async def test_storage_holds_only_what_feeds_reference_after_imports_trims_and_removals(
    backend: Backend,
) -> None:
    """10,000 activities to 50 followers, feeds trimmed to 100, half removed (Cassandra, which
    has no reference counts, runs a tenth of it and checks the removals released their data)."""
    small = backend.name in ("cassandra", "redis-cluster")
    count, followers = (1000, list(range(2, 12))) if small else (10_000, list(range(2, 52)))
    manager = make_manager(backend, followers)(import_path="tests:retention")
    activities = [old(n) for n in range(count)]
    await manager.batch_import(1, activities, chunk_size=500)
    removed = activities[1::2]
    for start in range(0, len(removed), 50):
        await asyncio.gather(
            *(manager.remove_user_activity(1, a) for a in removed[start : start + 50])
        )
    held = await referenced(manager, followers)
    assert held and not held & {a.activity_id for a in removed}
    storage = manager.user_feed_class
    assert await stored(storage, removed) == 0  # removals released their data
    assert await stored(storage, [a for a in activities if a.activity_id in held]) == len(held)
    if backend.name in COUNTS_REFERENCES:  # and trims released everything else
        assert await storage.get_activity_storage().count() == len(held)


async def drain(manager: Manager) -> None:
    worker = create_worker(manager, "high", burst=True, poll_delay=0.01, handle_signals=False,
                           redis_settings=queue_settings(REDIS_URL))
    try:
        await worker.async_run()
    finally:
        await worker.close()
    assert worker.jobs_failed == 0


@pytest.fixture
async def queue() -> AsyncIterator[ArqRedis]:
    pool = await create_queue(REDIS_URL)
    try:
        yield pool
    finally:
        await pool.aclose()


async def test_an_arq_removal_deletes_the_data_once_its_last_job_ran(
    backend: Backend, queue: ArqRedis
) -> None:
    followers = list(range(2, 32))
    manager = make_manager(backend, followers, fanout_chunk_size=10)(
        queue, import_path="tests:release"
    )
    activity = old(1)
    await manager.add_user_activity(1, activity)
    await drain(manager)
    await manager.remove_user_activity(1, activity)
    user_feed = manager.user_feed_class
    assert await stored(user_feed, [activity]) == 1  # followers hold it until their jobs run
    assert (await manager.get_feeds(followers[-1])["flat"][:]) == [activity]
    await drain(manager)
    assert await stored(user_feed, [activity]) == 0
    for user in followers[:3]:
        assert await manager.get_feeds(user)["flat"].count() == 0


async def test_nothing_older_than_the_ttl_is_ever_read(backend: Backend) -> None:
    ttl = timedelta(seconds=2)
    flat = backend.feed(max_length=100, activity_ttl=ttl)(1)
    aggregated = backend.feed("aggregated", activity_ttl=ttl)(1)
    notification = backend.feed("notification", activity_ttl=ttl)(1)
    # Groups expire as a whole (their last update): these make one group per kind of feed.
    expiring = [recent(n, seconds_ago=1, verb=Like) for n in range(5)]
    lasting = [recent(100 + n, seconds_ago=-60, object=7) for n in range(3)]  # a minute ahead
    already_gone = [recent(200, seconds_ago=30, object=7)]
    for feed in (flat, aggregated, notification):
        await feed.add_many([*expiring, *lasting, *already_gone])
    assert await flat.count() == 8
    assert await notification.count_unseen() == await notification.count() > 0
    await asyncio.sleep(1.5)  # the first five are now older than the TTL
    assert [a.activity_id for a in await flat[:]] == sorted(
        (a.activity_id for a in lasting), reverse=True
    )
    assert await flat.count() == 3 and not await flat.contains(expiring[0])
    page = await flat.page(limit=2)
    assert len(page.items) == 2 and len((await flat.page(cursor=page.next_cursor)).items) == 1
    for feed in (aggregated, notification):
        groups = await feed[:]
        assert {a.activity_id for g in groups for a in g.activities} == {
            a.activity_id for a in lasting
        }
        assert await feed.count() == len(groups) == 1
        assert not await feed.contains(expiring[0])
    assert await notification.count_unseen() == await notification.count_unread() == 1
    await flat.add(recent(300, seconds_ago=-60))  # a write drops what expired
    assert await flat.count() == 4
    activity_storage = backend.feed(max_length=100, activity_ttl=ttl).get_activity_storage()
    assert await activity_storage.get_many([already_gone[0].activity_id]) == [None]


async def test_a_ttl_must_be_a_positive_timedelta(backend: Backend) -> None:
    for bad in (5, timedelta(0), "1d"):
        with pytest.raises(TypeError, match="activity_ttl"):
            backend.feed(activity_ttl=bad)
