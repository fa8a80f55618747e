"""API.md "Exactness", on every backend: no activity lost or doubled, whatever the order.

Each test tries the hostile order on purpose: shuffled and retried adds into huge groups,
re-adds long after a group left the merge window, add/remove/add through three arq
workers, a slow add job overtaken by a removal, updates racing removals, unfollow of a
followee with more posts than any feed keeps.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from arq.connections import ArqRedis
from helpers import REDIS_URL, Backend, Like, Pin, backends, make_activity

from asyncfeeds import Activity, FanoutPriority, Manager
from asyncfeeds.fanout import create_queue
from asyncfeeds.fanout.queue import queue_settings
from asyncfeeds.worker import create_worker

HIGH = FanoutPriority.HIGH
DAY = datetime(2024, 3, 1, tzinfo=UTC)


def on_day(
    n: int,
    day: int = 0,
    *,
    actor: int | None = None,
    verb: type = Pin,
    object: int | None = None,
) -> Activity:
    """Activity ``n`` at second ``n`` of day ``day`` after ``DAY``."""
    return Activity(
        actor=n if actor is None else actor,
        verb=verb,
        object=n if object is None else object,
        time=DAY + timedelta(days=day, seconds=n),
    )


async def total(feed: Any) -> int:
    """Activities accounted for by every group of an aggregated feed."""
    return sum(g.activity_count for g in await feed[:])


# -- 1. huge groups, shuffled and retried ------------------------------------------------


@pytest.mark.parametrize("kind", ["aggregated", "notification"])
async def test_a_thousand_shuffled_activities_of_one_group_are_all_counted(
    backend: Backend, kind: str
) -> None:
    feed = backend.feed(kind)(1)
    # One verb, object and day: one group for either aggregator.
    activities = [on_day(n, verb=Like, object=1) for n in range(1000)]
    shuffled = activities[:]
    random.Random(1).shuffle(shuffled)
    for activity in shuffled:
        await feed.add(activity)
    (group,) = await feed[:]
    assert group.activity_count == 1000
    assert len(group.activities) == group.max_aggregated_activities_length
    newest = sorted(activities, key=lambda a: a.activity_id)[-15:]
    assert group.activities == newest

    # Every retry, in another shuffled order, changes nothing and reports nothing.
    random.Random(2).shuffle(shuffled)
    for activity in shuffled[:200]:
        assert await feed.add(activity) == []
    assert await feed.add_many(shuffled) == []
    assert await total(feed) == 1000 and await feed.count() == 1
    assert all([await feed.contains(a) for a in activities[::97]])

    # Kept or minimized, a removal takes exactly one out.
    oldest, newest_one = activities[0], activities[-1]
    assert await feed.remove_many([oldest, newest_one, activities[500]]) == 3
    assert await feed.remove(oldest) == 0
    assert await total(feed) == 997
    assert not await feed.contains(oldest) and not await feed.contains(newest_one)
    assert await feed.add(oldest) != []  # removed, so it may come back
    assert await total(feed) == 998


async def test_shuffled_activities_over_many_groups_are_each_held_once(
    backend: Backend,
) -> None:
    feed = backend.feed("aggregated", merge_max_length=5, max_length=1000)(1)
    activities = [on_day(n, day=n % 12, actor=n % 7) for n in range(600)]
    order = activities * 2
    random.Random(3).shuffle(order)
    for start in range(0, len(order), 50):
        await feed.add_many(order[start : start + 50])
    groups = await feed[:]
    assert sum(g.activity_count for g in groups) == 600
    held = [a.activity_id for g in groups for a in g.activities]
    assert len(held) == len(set(held))
    assert len({g.aggregated_id for g in groups}) == len(groups)


# -- 2. re-adds outside the merge window ---------------------------------------------------


@pytest.mark.parametrize("kind", ["aggregated", "notification"])
async def test_re_adding_an_activity_whose_group_left_the_merge_window_changes_nothing(
    backend: Backend, kind: str
) -> None:
    feed = backend.feed(kind)(1)
    x, y = on_day(1, verb=Like, object=1), on_day(2, verb=Like, object=1)
    await feed.add_many([x, y])
    for day in range(1, 26):
        await feed.add(on_day(100 + day, day, verb=Like))
    assert await feed.count() == 26
    assert await feed.add(x) == []  # a retried job, long after
    assert await feed.add_many([y, x]) == []
    groups = await feed[:]
    assert sum(g.activity_count for g in groups) == 27
    (old,) = [g for g in groups if g.contains(x)]
    assert [a.activity_id for a in old.activities] == [x.activity_id, y.activity_id]
    assert await feed.contains(y)
    assert await feed.remove(x) == 1
    assert [g.activity_count for g in await feed[:] if g.contains(y)] == [1]


def make_manager(backend: Backend, followers: dict[Any, Any], **attrs: Any) -> Any:
    """A Manager subclass over fresh feed classes of ``backend``, queues private to the test."""
    run = uuid.uuid4().hex[:8]
    attrs.setdefault("feed_classes", {
        "flat": backend.feed("flat", max_length=1000),
        "aggregated": backend.feed("aggregated"),
        "notification": backend.feed("notification"),
    })
    attrs.setdefault("user_feed_class", backend.feed("flat", max_length=100))
    attrs.setdefault("queue_names", {p: f"t{run}:fanout:{p.value}" for p in FanoutPriority})
    attrs.setdefault("retry_delay", 0.05)

    async def get_user_follower_ids(self: Manager, user_id: Any) -> Any:
        return followers.get(user_id, {})

    attrs["get_user_follower_ids"] = get_user_follower_ids
    return type(f"ExactManager{run}", (Manager,), attrs)


async def test_following_twice_leaves_the_feeds_as_once(backend: Backend) -> None:
    manager = make_manager(backend, {})(import_path="tests:twice")
    x = on_day(1, actor=5)
    await manager.batch_import(5, [x, on_day(2, actor=5), on_day(3, 30, actor=5)])
    for day in range(1, 26):
        await manager.batch_import(6, [on_day(200 + day, day, actor=6)])
    for _ in range(2):
        await manager.follow_user(9, 5)
        await manager.follow_user(9, 6)
    feeds = manager.get_feeds(9)
    assert await feeds["flat"].count() == 28
    assert await total(feeds["aggregated"]) == 28
    assert await total(feeds["notification"]) == 28


# -- 3. arq: the last call wins, whatever order three workers run the jobs in ---------------


@pytest.fixture
async def queue() -> AsyncIterator[ArqRedis]:
    pool = await create_queue(REDIS_URL)
    try:
        yield pool
    finally:
        await pool.aclose()


def worker(manager: Manager, **kwargs: Any) -> Any:
    """An in-process burst worker with its own connections to the queue."""
    return create_worker(manager, "high", burst=True, poll_delay=0.01, handle_signals=False,
                         redis_settings=queue_settings(REDIS_URL), **kwargs)


async def run_workers(manager: Manager, count: int = 3) -> None:
    """Three arq workers on the manager's high queue until it is empty."""
    workers = [worker(manager) for _ in range(count)]
    try:
        await asyncio.gather(*(w.async_run() for w in workers))
    finally:
        await asyncio.gather(*(w.close() for w in workers))
    for each in workers:
        assert each.jobs_failed == 0


async def held_by(manager: Manager, users: Sequence[Any], activity: Activity) -> dict[str, int]:
    """How many users' feeds of each kind hold the activity."""
    found: dict[str, int] = {}
    for name, feed_class in manager.feed_classes.items():
        flags = await asyncio.gather(*(feed_class(u).contains(activity) for u in users))
        found[name] = sum(flags)
    return found


async def test_add_remove_add_of_twenty_activities_through_three_workers(
    backend: Backend, queue: ArqRedis
) -> None:
    followers = list(range(1000, 1020))
    manager = make_manager(backend, {1: {HIGH: followers}}, fanout_chunk_size=5)(
        queue, import_path="tests:add-remove-add"
    )
    activities = [on_day(n, actor=1) for n in range(20)]
    for activity in activities:
        await manager.add_user_activity(1, activity)
        await manager.remove_user_activity(1, activity)
        await manager.add_user_activity(1, activity)
    gone = activities[::4]
    for activity in gone:  # and for some, add -> remove once more
        await manager.remove_user_activity(1, activity)
    await run_workers(manager)
    everyone = {name: len(followers) for name in manager.feed_classes}
    for activity in activities:
        expected = dict.fromkeys(everyone, 0) if activity in gone else everyone
        assert await held_by(manager, followers, activity) == expected
    kept = len(activities) - len(gone)
    for user in (followers[0], followers[-1]):
        feeds = manager.get_feeds(user)
        assert await feeds["flat"].count() == kept
        assert await total(feeds["aggregated"]) == kept
        assert await total(feeds["notification"]) == kept
    assert await manager.get_user_feed(1).count() == kept


async def test_a_slow_add_job_overtaken_by_a_removal_ends_with_the_removal(
    backend: Backend, queue: ArqRedis
) -> None:
    followers = list(range(2000, 2010))
    entered, release = asyncio.Event(), asyncio.Event()
    base = make_manager(backend, {1: {HIGH: followers}}, fanout_chunk_size=10)

    class SlowAdd(base):  # type: ignore[misc,valid-type]
        async def fanout(self, feed_class: type, user_ids: Sequence[Any], operation: str,
                         activities: Sequence[Any]) -> int:
            if operation == "add":  # the job has read its payload; now it dawdles
                entered.set()
                await release.wait()
            return await super().fanout(feed_class, user_ids, operation, activities)

    manager = SlowAdd(queue, import_path="tests:slow-add")
    activity = on_day(1, actor=1)
    await manager.add_user_activity(1, activity)
    slow = worker(manager, max_jobs=1)
    slow_run = asyncio.create_task(slow.async_run())
    await asyncio.wait_for(entered.wait(), 30)
    await manager.remove_user_activity(1, activity)
    fast = worker(manager)
    entered.clear()
    fast_run = asyncio.create_task(fast.async_run())
    await asyncio.sleep(0.5)  # the removal jobs run while the add jobs wait
    release.set()
    await asyncio.wait_for(asyncio.gather(slow_run, fast_run), 60)
    await asyncio.gather(slow.close(), fast.close())
    assert await held_by(manager, followers, activity) == dict.fromkeys(manager.feed_classes, 0)


async def test_a_job_run_twice_or_late_leaves_the_feeds_as_one_run(
    backend: Backend, queue: ArqRedis
) -> None:
    """Replaying every job of add -> remove -> add in reverse order, then again."""
    followers = list(range(3000, 3010))
    manager = make_manager(backend, {1: {HIGH: followers}})(queue, import_path="tests:replay")
    activity = on_day(1, actor=1)
    payloads: list[Any] = []
    name = manager.queue_names[HIGH]
    for call in (manager.add_user_activity, manager.remove_user_activity,
                 manager.add_user_activity):
        await call(1, activity)
        for raw in await queue.zrange(name, 0, -1):
            job_id = raw.decode()
            payloads.append((job_id, await queue.get(f"arq:job:{job_id}")))
            await queue.delete(f"arq:job:{job_id}")
        await queue.delete(name)
    from asyncfeeds.fanout import jobs, payload

    for _, raw in [*reversed(payloads), *payloads, *reversed(payloads)]:
        job, feed_class = payload.decode(payload.loads(raw)["a"][0], manager.feed_classes)
        await jobs.execute(manager, job, feed_class)
    assert await held_by(manager, followers, activity) == dict.fromkeys(
        manager.feed_classes, len(followers)
    )
    for user in followers[:2]:
        feeds = manager.get_feeds(user)
        assert await total(feeds["aggregated"]) == 1 and await feeds["flat"].count() == 1


# -- 4. an update never brings a removed activity back -------------------------------------


async def test_updates_racing_removals_never_bring_an_activity_back(
    backend: Backend, queue: ArqRedis
) -> None:
    followers = list(range(4000, 4060))
    manager = make_manager(backend, {1: {HIGH: followers}}, fanout_chunk_size=10)(
        queue, import_path="tests:update-race"
    )
    activities = [on_day(n, actor=1) for n in range(8)]
    for activity in activities:
        await manager.add_user_activity(1, activity)
    await run_workers(manager)
    changed = [a.model_copy(update={"extra_context": {"edited": True}}) for a in activities]
    for activity, edit in zip(activities, changed, strict=True):
        await asyncio.gather(
            manager.update_user_activities([edit]), manager.remove_user_activity(1, activity)
        )
        await manager.update_user_activities([edit])  # after the removal, too
    await run_workers(manager)
    for activity in activities:
        assert await held_by(manager, followers, activity) == dict.fromkeys(
            manager.feed_classes, 0
        )


async def test_an_update_whose_job_runs_before_the_add_job_still_wins(
    backend: Backend, queue: ArqRedis
) -> None:
    followers = list(range(5000, 5010))
    manager = make_manager(backend, {1: {HIGH: followers}})(queue, import_path="tests:upd")
    activity = on_day(1, actor=1)
    await manager.add_user_activity(1, activity)
    add_jobs = set(await queue.zrange(manager.queue_names[HIGH], 0, -1))
    await manager.update_user_activities([
        activity.model_copy(update={"extra_context": {"v": 2}})
    ])
    name = manager.queue_names[HIGH]
    later = int(time.time() * 1000) + 700
    for raw in add_jobs:  # the update jobs run first, the add jobs 0.7 s later
        await queue.zadd(name, {raw: later})
    await run_workers(manager, 1)
    for user in followers[:3]:
        feeds = manager.get_feeds(user)
        assert (await feeds["flat"][0]).extra_context == {"v": 2}
        (group,) = await feeds["aggregated"][:]
        assert group.activities[0].extra_context == {"v": 2}


# -- 5. unfollow removes everything of the followee ----------------------------------------


async def test_unfollow_removes_every_activity_of_the_followee(backend: Backend) -> None:
    followers = [7]
    manager = make_manager(backend, {1: {HIGH: followers}})(import_path="tests:unfollow")
    posts = [on_day(n, day=n % 3, actor=1) for n in range(150)]
    others = [on_day(1000 + n, 5, actor=2) for n in range(5)]  # newest: never trimmed
    for post in posts:
        await manager.add_user_activity(1, post)
    await manager.batch_import(2, others, fanout=False)
    await manager.follow_user(7, 2)
    feeds = manager.get_feeds(7)
    assert await manager.get_user_feed(1).count() == 100  # fewer than the follower holds
    assert await feeds["flat"].count() == 155
    await manager.unfollow_user(7, 1)
    assert [a.actor for a in await feeds["flat"][:]] == [2] * 5
    assert await total(feeds["aggregated"]) == 5
    assert await total(feeds["notification"]) == 5
    for feed in (feeds["aggregated"], feeds["notification"]):
        assert {a.actor for g in await feed[:] for a in g.activities} == {2}
    await manager.unfollow_user(7, "2")  # a user id and its decimal string are one user
    assert await feeds["flat"].count() == 0 and await feeds["aggregated"].count() == 0


# -- 6. keys -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key_format",
    ["feed:normal:%(user_id)s", "feed", "feed:{user_id}:{user_id}", "feed:{uid}",
     "feed{user_id}", "feed:{user_id}x", "{x}:{user_id}", 5],
)
def test_key_formats_are_checked_when_the_class_is_defined(
    backend: Backend, key_format: Any
) -> None:
    with pytest.raises(TypeError, match=r"feed:\{user_id\}"):
        backend.feed(key_format=key_format)


async def test_no_user_id_reaches_another_users_or_classes_keys(backend: Backend) -> None:
    short = backend.feed(key_format=f"k{backend.run_id}:{{user_id}}")
    long = backend.feed(key_format=f"k{backend.run_id}:normal:{{user_id}}")
    odd = ["normal:13", "13:", "{13}", "a b", "13%3A", "x*", "é", "-", "1_2"]
    await long(13).add(make_activity(1))
    for n, user_id in enumerate(odd):
        await short(user_id).add(make_activity(10 + n))
    assert await long(13).count() == 1
    assert [await short(u).count() for u in odd] == [1] * len(odd)
    assert await short(13).count() == 0
    assert await long("13").count() == 1  # an int and its decimal string are one feed
    await short.flush()
    assert await long(13).count() == 1
    assert [await short(u).count() for u in odd] == [0] * len(odd)
    for bad in ("", None, 1.5, True):
        with pytest.raises((TypeError, ValueError)):
            short(bad)
    with pytest.raises(ValueError):
        short("")


# -- 7. edges ----------------------------------------------------------------------------


async def test_for_raises_and_async_for_walks_the_whole_feed(backend: Backend) -> None:
    flat = backend.feed(max_length=1000)(1)
    aggregated = backend.feed("aggregated")(1)
    activities = [on_day(n, day=n % 4) for n in range(250)]
    await flat.add_many(activities)
    await aggregated.add_many(activities)
    with pytest.raises(TypeError, match="async for"):
        for _ in flat:
            pass
    with pytest.raises(TypeError):
        list(aggregated)
    walked = [a.activity_id async for a in flat]
    assert walked == sorted((a.activity_id for a in activities), reverse=True)
    oldest_first = [a.activity_id async for a in flat.order_by("activity_id")]
    assert oldest_first == walked[::-1]
    groups = [g async for g in aggregated]
    assert sum(g.activity_count for g in groups) == 250 and len(groups) == 4


async def test_times_from_1970_through_9999_keep_their_order(backend: Backend) -> None:
    times = [
        datetime(1970, 1, 1, tzinfo=UTC),
        datetime(2024, 1, 1, tzinfo=UTC),
        datetime(5138, 11, 16, 9, 46, 39, 999999, tzinfo=UTC),
        datetime(5138, 11, 16, 9, 46, 40, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    ]
    activities = [Activity(actor=1, verb=Pin, object=n, time=t) for n, t in enumerate(times)]
    assert sorted(activities, key=lambda a: a.activity_id) == activities
    feed = backend.feed()(1)
    await feed.add_many(reversed(activities))
    assert [a.time for a in await feed[:]] == times[::-1]
    aggregated = backend.feed("aggregated")(1)
    await aggregated.add_many(activities)
    assert await total(aggregated) == len(times)
    with pytest.raises(ValueError):
        Activity(actor=1, verb=Pin, object=1, time=datetime(1969, 12, 31, tzinfo=UTC))


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"n": value}
    return value


async def test_extra_context_that_validates_is_stored_by_every_feed_kind(
    backend: Backend,
) -> None:
    from pydantic import ValidationError

    from asyncfeeds.activity import MAX_EXTRA_CONTEXT_DEPTH

    with pytest.raises(ValidationError, match="deeper"):
        make_activity(1, extra_context=nested(252))
    deepest = make_activity(2, extra_context=nested(MAX_EXTRA_CONTEXT_DEPTH))
    for kind in ("flat", "aggregated", "notification"):
        feed = backend.feed(kind)(1)
        await feed.add(deepest)
        item = (await feed[:])[0]
        stored = item if kind == "flat" else item.activities[0]
        assert stored.extra_context == deepest.extra_context


async def test_an_oversized_activity_is_refused_before_any_write(backend: Backend) -> None:
    huge = make_activity(1, extra_context={"blob": "x" * 10_000_000})
    manager = make_manager(backend, {1: {HIGH: [2, 3]}})(import_path="tests:huge")
    async with asyncio.timeout(10):
        for kind in ("flat", "aggregated", "notification"):
            feed = backend.feed(kind)(1)
            with pytest.raises(ValueError, match="max_activity_bytes"):
                await feed.add(huge)
            assert await feed.count() == 0
        with pytest.raises(ValueError, match="bytes"):
            await manager.add_user_activity(1, huge)
    assert await manager.get_user_feed(1).count() == 0
    assert [await f.count() for f in manager.get_feeds(2).values()] == [0, 0, 0]
    stored = await manager.user_feed_class.get_activity_storage().get_many([huge.activity_id])
    assert stored == [None]


# -- 8. processes writing one aggregated and one notification feed -------------------------

WRITER = """
import asyncio, random, sys
from datetime import UTC, datetime, timedelta

import asyncfeeds
from asyncfeeds import Activity, Verb, register_verb
from asyncfeeds import {backend}AggregatedFeed as Aggregated
from asyncfeeds import {backend}NotificationFeed as Notification


class Like(Verb):
    id = 6
    infinitive = "like"
    past_tense = "liked"


register_verb(Like)
Aggregated.key_format = "{aggregated_format}"
Notification.key_format = "{notification_format}"
Aggregated.activity_key_prefix = Notification.activity_key_prefix = "{prefix}"
seed, count = int(sys.argv[1]), int(sys.argv[2])


async def main():
    {configure}
    base = datetime(2024, 3, 1, tzinfo=UTC)
    activities = [
        Activity(actor=n, verb=Like, object=n % 3, time=base + timedelta(minutes=n))
        for n in range(count)
    ]
    random.Random(seed).shuffle(activities)
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    for start in range(0, count, 3):
        chunk = activities[start:start + 3]
        await asyncio.gather(Aggregated(1).add_many(chunk), Notification(1).add_many(chunk))
    await asyncfeeds.aclose()
    print("done", flush=True)


asyncio.run(main())
"""


@pytest.mark.parametrize("backend", backends("redis", "cassandra"), indirect=True)
async def test_four_processes_writing_shuffled_activities_count_exactly(
    backend: Backend, tmp_path: Any
) -> None:
    import sys

    from helpers import CASSANDRA_KEYSPACE, CASSANDRA_PORT

    aggregated, notification = backend.feed("aggregated"), backend.feed("notification")
    if backend.name == "redis":
        configure = f'asyncfeeds.configure(redis={{"default": "{REDIS_URL}"}})'
    else:
        configure = (
            'asyncfeeds.configure(cassandra={"default": {"hosts": ["127.0.0.1"], '
            f'"port": {CASSANDRA_PORT}, "keyspace": "{CASSANDRA_KEYSPACE}", '
            '"consistency": "ONE"}})'
        )
    script = tmp_path / "writer.py"
    script.write_text(WRITER.format(
        backend="Redis" if backend.name == "redis" else "Cassandra",
        aggregated_format=aggregated.key_format, notification_format=notification.key_format,
        prefix=aggregated.activity_key_prefix, configure=configure,
    ))
    count = 90
    children = [
        await asyncio.create_subprocess_exec(
            sys.executable, str(script), str(seed), str(count),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )
        for seed in range(4)
    ]
    try:
        for child in children:
            assert await asyncio.wait_for(child.stdout.readline(), 60) == b"ready\n"  # type: ignore[union-attr]
        for child in children:
            child.stdin.write(b"go\n")  # type: ignore[union-attr]
            await child.stdin.drain()  # type: ignore[union-attr]
        for child in children:
            assert await asyncio.wait_for(child.stdout.readline(), 120) == b"done\n"  # type: ignore[union-attr]
            assert await child.wait() == 0
    finally:
        for child in children:
            if child.returncode is None:
                child.kill()
                await child.wait()
            child.stdin.close()  # type: ignore[union-attr]
    for feed in (aggregated(1), notification(1)):
        groups = await feed[:]
        assert sum(g.activity_count for g in groups) == count
        assert len({g.group for g in groups}) == len(groups)
    notifications = await notification(1)[:]
    unseen = sum(not g.is_seen for g in notifications)
    unread = sum(not g.is_read for g in notifications)
    assert (await notification(1).count_unseen(), await notification(1).count_unread()) == (
        unseen, unread
    ) == (len(notifications), len(notifications))
