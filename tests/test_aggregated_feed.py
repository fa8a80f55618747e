"""Aggregated feeds on every backend: merging into groups, merge_max_length, removal, trims."""

from __future__ import annotations

import asyncio

import pytest
from helpers import Like, Pin, make_activity

from asyncfeeds import Activity, AggregatedActivity, BaseAggregator

DAY = 24 * 60


def on_day(n: int, day: int, **kwargs) -> Activity:
    """Activity ``n`` at minute ``n`` of day ``day`` after BASE_TIME."""
    return make_activity(n, minutes=day * DAY + n, **kwargs)


def ids(activities) -> list[str]:
    return [a.activity_id for a in activities]


class PinActivity(Activity):
    board_id: int


class ByActor(BaseAggregator):
    """Groups by actor; the biggest group ranks first."""

    def get_group(self, activity: Activity) -> str:
        return f"actor-{activity.actor}"

    def rank(self, aggregated: list[AggregatedActivity]) -> list[AggregatedActivity]:
        return sorted(aggregated, key=lambda g: (g.activity_count, g.group), reverse=True)


async def test_add_many_returns_the_new_and_changed_groups(backend):
    feed = backend.feed("aggregated")(1)
    pins = [on_day(i, 0, verb=Pin) for i in range(3)]
    result = await feed.add_many(pins)
    assert len(result) == 1
    assert isinstance(result[0], AggregatedActivity)
    assert ids(result[0].activities) == ids(pins)

    pin, like = on_day(3, 0, verb=Pin), on_day(4, 0, verb=Like)
    result = await feed.add_many([pin, like])
    summary = sorted((g.verb.infinitive, g.activity_count) for g in result)
    assert summary == [("like", 1), ("pin", 4)]
    assert await feed.add_many([pin, like]) == []
    assert await feed.add_many([]) == []


async def test_add_returns_the_new_or_changed_group(backend):
    feed = backend.feed("aggregated")(1)
    a, b = on_day(1, 0), on_day(2, 0)
    (first,) = await feed.add(a)
    (second,) = await feed.add(b)
    assert second.aggregated_id == first.aggregated_id
    assert ids(second.activities) == ids([a, b])
    assert await feed.add(a) == []


async def test_count_counts_groups(backend):
    feed = backend.feed("aggregated")(1)
    await feed.add_many([on_day(i, i % 3, verb=Pin) for i in range(9)])
    await feed.add_many([on_day(10, 0, verb=Like)])
    assert await feed.count() == 4
    assert await backend.feed("aggregated")(2).count() == 0


async def test_slices_are_groups_ranked_most_recent_first(backend):
    feed = backend.feed("aggregated")(1)
    await feed.add_many([on_day(i, day) for i, day in enumerate([2, 0, 3, 1])])
    groups = await feed[:]
    assert [g.activities[0].time.day for g in groups] == [4, 3, 2, 1]
    assert ids((await feed[1:3])[0].activities) == ids((groups[1]).activities)
    assert (await feed[0]).aggregated_id == groups[0].aggregated_id
    assert await feed[2:2] == []
    with pytest.raises(IndexError):
        await feed[4]
    with pytest.raises(ValueError):
        await feed[-1]


async def test_slices_use_the_aggregator_rank(backend):
    feed = backend.feed("aggregated", aggregator_class=ByActor)(1)
    await feed.add_many([make_activity(i, actor=1) for i in range(3)])
    await feed.add_many([make_activity(i, actor=2) for i in range(3, 5)])
    assert [g.group for g in await feed[:]] == ["actor-1", "actor-2"]


async def test_groups_are_fully_hydrated(backend):
    feed_class = backend.feed("aggregated", activity_class=PinActivity)
    activities = [
        PinActivity(actor=i, verb=Pin, object=i, board_id=100 + i, time=on_day(i, 0).time,
                    extra_context={"i": i})
        for i in range(3)
    ]
    await feed_class(1).add_many(activities)
    (group,) = await feed_class(1)[:]
    assert [type(a) for a in group.activities] == [PinActivity] * 3
    assert [a.model_dump() for a in group.activities] == [a.model_dump() for a in activities]
    assert group.actor_ids == [2, 1, 0]
    assert group.created_at == activities[0].time
    assert group.updated_at == activities[2].time


async def test_merge_max_length_does_not_reopen_older_groups(backend):
    feed = backend.feed("aggregated", merge_max_length=2)(1)
    first = on_day(1, 0)
    await feed.add_many([first, on_day(2, 1), on_day(3, 2)])
    late = on_day(500, 0)  # same verb and day as the oldest group, which is out of reach
    (created,) = await feed.add(late)
    assert created.activities == [late]
    assert await feed.count() == 4
    groups = await feed[:]
    same_key = [g for g in groups if g.group == created.group]
    assert len(same_key) == 2
    assert len({g.aggregated_id for g in same_key}) == 2
    assert sorted(a.activity_id for g in same_key for a in g.activities) == sorted(
        ids([first, late]))
    (changed,) = await feed.add(on_day(3, 2, actor=77))  # a recent group is still joined
    assert changed.activity_count == 2
    assert await feed.count() == 4


async def test_max_length_trims_the_oldest_groups(backend):
    feed = backend.feed("aggregated", max_length=3)(1)
    for day in range(5):
        await feed.add(on_day(day, day))
        assert await feed.count() == min(day + 1, 3)
    assert [g.activities[0].time.day for g in await feed[:]] == [5, 4, 3]


async def test_trim_and_delete(backend):
    feed_class = backend.feed("aggregated")
    await feed_class(1).add_many([on_day(day, day) for day in range(5)])
    await feed_class(2).add(on_day(1, 1))
    await feed_class(1).trim(2)
    assert [g.activities[0].time.day for g in await feed_class(1)[:]] == [5, 4]
    await feed_class(1).delete()
    assert await feed_class(1).count() == 0
    assert await feed_class(1)[:] == []
    assert await feed_class(2).count() == 1


async def test_flush_drops_every_feed_of_the_class(backend):
    feed_class = backend.feed("aggregated")
    await feed_class(1).add(on_day(1, 0))
    await feed_class(2).add(on_day(2, 0))
    await feed_class.flush()
    assert await feed_class(1).count() == 0
    assert await feed_class(2).count() == 0


async def test_group_keeps_fifteen_and_counts_all(backend):
    feed = backend.feed("aggregated")(1)
    activities = [on_day(i, 0, actor=i) for i in range(20)]
    await feed.add_many(activities[:10])
    await feed.add_many(activities[10:])
    (group,) = await feed[:]
    assert ids(group.activities) == ids(activities[5:])
    assert group.minimized_activities == 5
    assert group.activity_count == 20


async def test_remove_many_takes_activities_out_and_deletes_emptied_groups(backend):
    feed = backend.feed("aggregated")(1)
    a1, a2 = on_day(1, 0), on_day(2, 0)
    b1 = on_day(3, 1)
    c1, c2 = on_day(4, 2), on_day(5, 2)
    await feed.add_many([a1, a2, b1, c1, c2])
    assert await feed.count() == 3
    assert await feed.remove_many([a1, b1.activity_id, make_activity(99)]) == 2
    assert await feed.count() == 2
    groups = await feed[:]
    assert [ids(g.activities) for g in groups] == [ids([c1, c2]), ids([a2])]
    assert groups[1].updated_at == a2.time
    assert await feed.remove(c1) == 1
    assert await feed.remove(c1) == 0
    assert await feed.remove_many([c2, a2]) == 2
    assert await feed.count() == 0


async def test_contains(backend):
    feed = backend.feed("aggregated")(1)
    a, b = on_day(1, 0), on_day(2, 1)
    await feed.add(a)
    assert await feed.contains(a)
    assert await feed.contains(a.activity_id)
    assert not await feed.contains(b)
    await feed.remove(a)
    assert not await feed.contains(a)


async def test_wrong_input_raises_type_error_and_writes_nothing(backend):
    feed_class = backend.feed("aggregated", activity_class=PinActivity)
    good = PinActivity(actor=1, verb=Pin, object=1, board_id=1)
    for bad in ([good, make_activity(2)], [good, "x"], good, None):
        with pytest.raises(TypeError):
            await feed_class(1).add_many(bad)
    with pytest.raises(TypeError):
        await feed_class(1).add(make_activity(3))
    assert await feed_class(1).count() == 0
    assert await feed_class(1)[:] == []


async def test_concurrent_adds_from_many_tasks_lose_nothing(backend):
    feed_class = backend.feed("aggregated")
    activities = [on_day(i, 0, actor=i) for i in range(50)]
    await asyncio.gather(*(feed_class(1).add(a) for a in activities))
    (group,) = await feed_class(1)[:]
    assert group.activity_count == 50
    assert ids(group.activities) == ids(activities[35:])


async def test_concurrent_add_many_to_several_groups_lose_nothing(backend):
    feed_class = backend.feed("aggregated")
    activities = [on_day(i, i % 3, actor=i) for i in range(60)]
    batches = [activities[i::10] for i in range(10)]
    await asyncio.gather(*(feed_class(1).add_many(batch) for batch in batches))
    groups = await feed_class(1)[:]
    assert len(groups) == 3
    assert sorted(g.activity_count for g in groups) == [20, 20, 20]
