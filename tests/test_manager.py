"""The fanout Manager in eager mode, on every backend: publish, remove, update, follow, import."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from helpers import Backend, Like, Pin, make_activity

from asyncfeeds import Activity, AggregatedActivity, FanoutPriority, Manager
from asyncfeeds.fanout.manager import _chunks

HIGH, LOW = FanoutPriority.HIGH, FanoutPriority.LOW


def make_manager(backend: Backend, followers: dict[Any, Any] | None = None, **attrs: Any) -> Any:
    """A Manager subclass over fresh feed classes of ``backend`` with a dict of followers."""
    attrs.setdefault("feed_classes", {
        "flat": backend.feed("flat", max_length=1000),
        "aggregated": backend.feed("aggregated"),
    })
    attrs.setdefault("user_feed_class", backend.feed("flat", max_length=1000))
    table = followers or {}

    async def get_user_follower_ids(self: Manager, user_id: Any) -> Any:
        return table.get(user_id, {})

    attrs["get_user_follower_ids"] = get_user_follower_ids
    return type("TestManager", (Manager,), attrs)


async def holders(feed_class: type, user_ids: Sequence[Any], activity: Activity) -> int:
    """How many of the users' feeds hold the activity."""
    found = 0
    for start in range(0, len(user_ids), 200):
        batch = user_ids[start : start + 200]
        found += sum(await asyncio.gather(*(feed_class(u).contains(activity) for u in batch)))
    return found


def test_defaults_and_priorities() -> None:
    assert Manager.queue_names == {
        FanoutPriority.HIGH: "asyncfeeds:fanout:high",
        FanoutPriority.LOW: "asyncfeeds:fanout:low",
    }
    assert Manager.fanout_chunk_size == 100 and Manager.follow_activity_limit == 5000
    assert FanoutPriority.HIGH == "high" and FanoutPriority("low") is FanoutPriority.LOW


async def test_publish_reaches_every_follower_of_every_priority(backend: Backend) -> None:
    followers = {1: {HIGH: list(range(100, 160)), LOW: {200, 201, 202}}}
    manager = make_manager(backend, followers, fanout_chunk_size=25)()
    activity = make_activity(1, actor=1)
    await manager.add_user_activity(1, activity)

    everyone = [*range(100, 160), 200, 201, 202]
    for feed in manager.get_feeds(1).values():
        assert await feed.count() == 0
    assert await manager.get_user_feed(1)[:] == [activity]
    flat, aggregated = manager.feed_classes["flat"], manager.feed_classes["aggregated"]
    assert await holders(flat, everyone, activity) == len(everyone)
    assert await holders(aggregated, everyone, activity) == len(everyone)
    assert await flat(150)[:] == [activity]
    assert (await aggregated(201)[:])[0].activities == [activity]

    await manager.remove_user_activity(1, activity)
    assert await manager.get_user_feed(1).count() == 0
    assert await holders(flat, everyone, activity) == 0
    assert await holders(aggregated, everyone, activity) == 0


async def test_eager_fanout_to_thousands_of_followers(backend: Backend) -> None:
    high, low = list(range(10_000, 11_500)), list(range(20_000, 20_500))
    manager = make_manager(backend, {1: {HIGH: high, LOW: iter(low)}})()
    activity = make_activity(1, actor=1)
    await manager.add_user_activity(1, activity)
    for feed_class in manager.feed_classes.values():
        assert await holders(feed_class, high + low, activity) == len(high) + len(low)


async def test_each_chunk_is_one_fanout_call(memory_backend: Backend) -> None:
    calls: list[tuple[str, str, list[Any]]] = []

    class Traced(make_manager(memory_backend, {1: {HIGH: range(250), LOW: iter(range(250, 260))}},
                              fanout_chunk_size=100)):  # type: ignore[misc]
        async def fanout(self, feed_class: type, user_ids: Sequence[Any], operation: str,
                         activities: Sequence[Any]) -> int:
            calls.append((feed_class.__name__, operation, list(user_ids)))
            return await super().fanout(feed_class, user_ids, operation, activities)

    manager = Traced()
    await manager.add_user_activity(1, make_activity(1, actor=1))
    assert len(calls) == 4 * 2  # chunks 100, 100, 50 (high) and 10 (low), for two feed classes
    for feed_class in manager.feed_classes.values():
        chunks = [ids for name, op, ids in calls if name == feed_class.__name__]
        assert [len(c) for c in chunks] == [100, 100, 50, 10]
        assert sorted(u for c in chunks for u in c) == list(range(260))
    assert {op for _, op, _ in calls} == {"add"}


async def test_follower_ids_may_be_async_iterators_generators_or_sets(
    memory_backend: Backend,
) -> None:
    async def stream() -> AsyncIterator[int]:
        for user_id in range(30, 45):
            yield user_id

    followers = {1: {"high": (u for u in range(10, 20)), "LOW": stream(), "HIGH": {50, 51}}}
    manager = make_manager(memory_backend, followers, fanout_chunk_size=4)()
    activity = make_activity(2, actor=1)
    await manager.add_user_activity(1, activity)
    flat = manager.feed_classes["flat"]
    expected = [*range(10, 20), *range(30, 45), 50, 51]
    assert await holders(flat, expected, activity) == len(expected)

    assert [c async for c in _chunks(range(7), 3)] == [[0, 1, 2], [3, 4, 5], [6]]
    assert [c async for c in _chunks([], 3)] == []


async def test_bad_input_fails_before_any_write(memory_backend: Backend) -> None:
    manager = make_manager(memory_backend, {1: {HIGH: [2, 3]}})()
    with pytest.raises(TypeError):
        await manager.add_user_activity(1, "not an activity")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        await manager.add_user_activity(True, make_activity(1))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        await manager.batch_import(1, [make_activity(1), object()])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="chunk_size"):
        await manager.batch_import(1, [make_activity(1)], chunk_size=0)
    with pytest.raises(TypeError):
        await manager.follow_many_users(1, 2)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        await manager.update_user_activities([{"actor": 1}])  # type: ignore[list-item]
    assert await manager.get_user_feed(1).count() == 0

    class PinActivity(Activity):
        board_id: int

    typed = make_manager(memory_backend, {}, feed_classes={
        "pins": memory_backend.feed("flat", activity_class=PinActivity)})()
    with pytest.raises(TypeError, match="PinActivity"):
        await typed.add_user_activity(1, make_activity(1))
    assert await typed.get_user_feed(1).count() == 0

    bad_priority = make_manager(memory_backend, {1: {"urgent": [2]}})()
    with pytest.raises(ValueError, match="urgent"):
        await bad_priority.add_user_activity(1, make_activity(3))
    bad_ids = make_manager(memory_backend, {1: {HIGH: [2, None]}})()
    with pytest.raises(TypeError, match="user ids"):
        await bad_ids.add_user_activity(1, make_activity(4))


def test_misconfigured_managers_fail_at_construction(memory_backend: Backend) -> None:
    with pytest.raises(TypeError, match="feed class"):
        make_manager(memory_backend, feed_classes={"x": dict})()
    with pytest.raises(ValueError, match="fanout_chunk_size"):
        make_manager(memory_backend, fanout_chunk_size=0)()
    with pytest.raises(ValueError, match="fanout_concurrency"):
        make_manager(memory_backend, fanout_concurrency=0)()
    with pytest.raises(ValueError, match="fanout_chunks_per_job"):
        make_manager(memory_backend, fanout_chunks_per_job=True)()
    with pytest.raises(TypeError, match="arq pool"):
        make_manager(memory_backend)(queue="redis://127.0.0.1:6390")


async def test_batch_import_fans_out_every_chunk(backend: Backend) -> None:
    followers = {7: {HIGH: list(range(20, 32)), LOW: [40]}}
    manager = make_manager(backend, followers, fanout_chunk_size=5)()
    activities = [make_activity(n, actor=7, verb=Like if n % 3 else Pin) for n in range(23)]
    await manager.batch_import(7, reversed(activities), chunk_size=10)

    newest_first = sorted(activities, key=lambda a: a.activity_id, reverse=True)
    assert await manager.get_user_feed(7)[:] == newest_first
    flat, aggregated = manager.feed_classes["flat"], manager.feed_classes["aggregated"]
    for user_id in (20, 31, 40):
        assert await flat(user_id)[:] == newest_first
        groups = await aggregated(user_id)[:]
        assert sum(g.activity_count for g in groups) == len(activities)

    quiet = make_manager(backend, followers)()
    await quiet.batch_import(7, activities[:3], fanout=False)
    assert await quiet.get_user_feed(7).count() == 3
    assert await quiet.feed_classes["flat"](20).count() == 0


async def test_follow_copies_recent_activities_and_unfollow_removes_them(
    backend: Backend,
) -> None:
    manager = make_manager(backend, {}, follow_activity_limit=5, activity_chunk_size=2)()
    by_2 = [make_activity(n, actor=2) for n in range(8)]
    by_3 = [make_activity(100 + n, actor=3) for n in range(3)]
    await manager.batch_import(2, by_2)
    await manager.batch_import(3, by_3)

    await manager.follow_user(1, 2)
    flat, aggregated = manager.feed_classes["flat"], manager.feed_classes["aggregated"]
    newest_of_2 = sorted(by_2, key=lambda a: a.activity_id, reverse=True)[:5]
    assert await flat(1)[:] == newest_of_2
    assert _flatten(await aggregated(1)[:]) == {a.activity_id for a in newest_of_2}

    await manager.follow_many_users(1, [3])
    assert await flat(1).count() == 8
    await manager.follow_user(1, 2)  # following again duplicates nothing
    assert await flat(1).count() == 8
    assert len(_flatten(await aggregated(1)[:])) == 8

    await manager.unfollow_user(1, 2)
    assert sorted(await flat(1)[:], key=lambda a: a.activity_id) == by_3
    assert _flatten(await aggregated(1)[:]) == {a.activity_id for a in by_3}
    await manager.unfollow_many_users(1, [3])
    assert await flat(1).count() == 0
    assert await aggregated(1).count() == 0


async def test_update_replaces_data_in_place_without_adding(backend: Backend) -> None:
    followers = {5: {HIGH: [60, 61, 62]}}
    manager = make_manager(backend, followers)()
    older = make_activity(10, actor=5, extra_context={"v": 1})
    activity = make_activity(11, actor=5, extra_context={"v": 1})
    newer = make_activity(12, actor=5)
    for a in (older, activity, newer):
        await manager.add_user_activity(5, a)
    flat, aggregated = manager.feed_classes["flat"], manager.feed_classes["aggregated"]
    await flat(62).remove(activity)  # one follower no longer holds it

    changed = activity.model_copy(update={"extra_context": {"v": 2}})
    assert changed.activity_id == activity.activity_id
    await manager.update_user_activities([changed])

    for feed in (manager.get_user_feed(5), flat(60), flat(61)):
        items = await feed[:]
        assert [a.activity_id for a in items] == [x.activity_id for x in (newer, activity, older)]
        assert items[1].extra_context == {"v": 2} and items[2].extra_context == {"v": 1}
    assert await flat(62)[:] == [newer, older]
    for user_id in (60, 61, 62):
        groups = await aggregated(user_id)[:]
        assert len(groups) == 1 and groups[0].activity_count == 3
        held = {a.activity_id: a.extra_context for a in groups[0].activities}
        assert held[activity.activity_id] == {"v": 2}


def _flatten(groups: list[AggregatedActivity]) -> set[str]:
    return {a.activity_id for g in groups for a in g.activities}


def tracking_fanout(limit: int, fail_at: int | None = None) -> tuple[Any, dict[str, Any]]:
    """A ``fanout`` override counting chunks in flight (and failing the ``fail_at``-th);
    ``seen["sixth"]`` is set when the sixth chunk starts."""
    seen: dict[str, Any] = {"now": 0, "most": 0, "started": 0, "ended": 0,
                            "sixth": asyncio.Event()}

    async def fanout(self: Manager, feed_class: Any, user_ids: Any, operation: Any,
                     activities: Any) -> int:
        seen["started"] += 1
        number = seen["started"]
        if number == 6:
            seen["sixth"].set()
        seen["now"] += 1
        seen["most"] = max(seen["most"], seen["now"])
        try:
            for _ in range(3):
                await asyncio.sleep(0)
            if number == fail_at:
                raise ConnectionError("chunk lost")
            return await Manager.fanout(self, feed_class, user_ids, operation, activities)
        finally:
            seen["now"] -= 1
            seen["ended"] += 1

    return fanout, seen


async def test_eager_fanout_keeps_a_bounded_number_of_chunks_in_flight(
    backend: Backend,
) -> None:
    followers = list(range(1000, 1230))
    fanout, seen = tracking_fanout(4)
    progress: list[int] = []
    manager = make_manager(backend, {1: {HIGH: followers}}, fanout_chunk_size=10,
                           fanout_concurrency=4, fanout=fanout)()
    activity = make_activity(1, actor=1)
    await manager.add_user_activity(1, activity, progress=progress.append)
    assert seen["most"] == 4 and seen["started"] == seen["ended"] == 2 * 23
    assert sum(progress) == 2 * len(followers)
    for feed_class in manager.feed_classes.values():
        assert await holders(feed_class, followers, activity) == len(followers)

    await manager.remove_user_activity(1, activity)
    for feed_class in manager.feed_classes.values():
        assert await holders(feed_class, followers, activity) == 0


async def test_a_failed_chunk_stops_the_eager_fanout_after_the_chunks_in_flight(
    memory_backend: Backend,
) -> None:
    followers = list(range(1000, 1500))
    fanout, seen = tracking_fanout(3, fail_at=5)
    manager = make_manager(memory_backend, {1: {HIGH: followers}}, fanout_chunk_size=10,
                           fanout_concurrency=3, fanout=fanout,
                           feed_classes={"flat": memory_backend.feed("flat")})()
    with pytest.raises(ConnectionError, match="chunk lost"):
        await manager.add_user_activity(1, make_activity(2, actor=1))
    assert seen["now"] == 0 and seen["started"] == seen["ended"]  # none left running
    assert seen["started"] < 5 + 3  # no chunk started after the failure was seen


async def test_one_chunk_in_flight_is_the_sequential_fanout(memory_backend: Backend) -> None:
    followers = list(range(1000, 1100))
    fanout, seen = tracking_fanout(1)
    manager = make_manager(memory_backend, {1: {HIGH: followers}}, fanout_chunk_size=10,
                           fanout_concurrency=1, fanout=fanout)()
    await manager.add_user_activity(1, make_activity(3, actor=1))
    assert seen["most"] == 1 and seen["started"] == 20


async def test_a_cancelled_eager_fanout_leaves_no_chunk_running(memory_backend: Backend) -> None:
    followers = list(range(1000, 1500))
    fanout, seen = tracking_fanout(4)
    manager = make_manager(memory_backend, {1: {HIGH: followers}}, fanout_chunk_size=10,
                           fanout_concurrency=4, fanout=fanout)()
    publishing = asyncio.ensure_future(manager.add_user_activity(1, make_activity(4, actor=1)))
    await seen["sixth"].wait()
    publishing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await publishing
    assert seen["now"] == 0 and seen["started"] == seen["ended"] < 100
