"""Flat feeds on every backend: writes, reads, slicing, filters, ordering, validation, hydration."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from helpers import Like, Pin, make_activity

from asyncfeeds import Activity


class PinActivity(Activity):
    board_id: int
    tags: list[str] = []


def ids(activities) -> list[str]:
    return [a.activity_id for a in activities]


def newest_first(activities) -> list[str]:
    return sorted(ids(activities), reverse=True)


async def stored_data(feed_class, activities) -> list[bytes | None]:
    """What the feed class's activity storage holds for these activities."""
    return await feed_class.get_activity_storage().get_many(ids(activities))


# -- add, count, max_length ------------------------------------------------------


async def test_add_returns_1_when_new_and_0_when_held(backend):
    feed = backend.feed(max_length=5)(1)
    a = make_activity(1)
    assert await feed.add(a) == 1
    assert await feed.add(a) == 0
    assert await feed.add(make_activity(1, extra_context={"retry": True})) == 0
    assert await feed.count() == 1


async def test_add_many_counts_new_activities(backend):
    feed = backend.feed(max_length=50)(1)
    first = [make_activity(i) for i in range(4)]
    assert await feed.add_many(first) == 4
    assert await feed.add_many([*first[2:], make_activity(4), make_activity(5)]) == 2
    assert await feed.add_many([make_activity(6), make_activity(6)]) == 1
    assert await feed.add_many([]) == 0
    assert await feed.count() == 7


async def test_count_stays_within_max_length_after_every_add(backend):
    feed = backend.feed(max_length=5)(1)
    for i in range(9):
        await feed.add(make_activity(i))
        assert await feed.count() == min(i + 1, 5)
    assert ids(await feed[:]) == newest_first(make_activity(i) for i in range(4, 9))


async def test_add_many_trims_to_max_length(backend):
    feed = backend.feed(max_length=5)(1)
    activities = [make_activity(i) for i in range(12)]
    await feed.add_many(reversed(activities))
    assert await feed.count() == 5
    assert ids(await feed[:]) == newest_first(activities[7:])
    await feed.add_many(activities[:3])
    assert await feed.count() == 5
    assert ids(await feed[:]) == newest_first(activities[7:])


async def test_feeds_of_different_users_are_separate(backend):
    feed_class = backend.feed(max_length=5)
    await feed_class(1).add(make_activity(1))
    await feed_class("u-2").add_many([make_activity(2), make_activity(3)])
    assert await feed_class(1).count() == 1
    assert await feed_class("u-2").count() == 2
    assert await feed_class(3).count() == 0
    assert await feed_class(3)[:] == []


# -- remove, contains, index_of ----------------------------------------------------


async def test_remove_and_remove_many_with_activities_and_ids(backend):
    feed = backend.feed(max_length=10)(1)
    a = [make_activity(i) for i in range(6)]
    await feed.add_many(a)
    assert await feed.remove(a[0]) == 1
    assert await feed.remove(a[0]) == 0
    assert await feed.remove(a[1].activity_id) == 1
    assert await feed.remove_many([a[2], a[3].activity_id, make_activity(99)]) == 2
    assert await feed.remove_many([]) == 0
    assert await feed.count() == 2
    assert ids(await feed[:]) == newest_first(a[4:])


async def test_contains(backend):
    feed = backend.feed(max_length=5)(1)
    a, b = make_activity(1), make_activity(2)
    await feed.add(a)
    assert await feed.contains(a)
    assert await feed.contains(a.activity_id)
    assert not await feed.contains(b)
    assert not await feed.contains(b.activity_id)


async def test_index_of_counts_from_the_newest(backend):
    feed = backend.feed(max_length=10)(1)
    a = [make_activity(i) for i in range(4)]
    await feed.add_many(a)
    assert await feed.index_of(a[3]) == 0
    assert await feed.index_of(a[0]) == 3
    assert await feed.index_of(a[1].activity_id) == 2
    with pytest.raises(ValueError):
        await feed.index_of(make_activity(99))


# -- trim, delete, flush ------------------------------------------------------------


async def test_trim_defaults_to_max_length_and_takes_a_length(backend):
    big = backend.feed(max_length=20)
    small = backend.feed(max_length=5, key_format=big.key_format)  # same timelines
    activities = [make_activity(i) for i in range(12)]
    await big(1).add_many(activities)
    assert await small(1).count() == 12
    await small(1).trim()
    assert await big(1).count() == 5
    assert ids(await big(1)[:]) == newest_first(activities[7:])
    await big(1).trim(2)
    assert ids(await big(1)[:]) == newest_first(activities[10:])
    with pytest.raises(ValueError):
        await big(1).trim(-1)


async def test_delete_empties_one_feed(backend):
    feed_class = backend.feed(max_length=5)
    await feed_class(1).add_many([make_activity(1), make_activity(2)])
    await feed_class(2).add(make_activity(3))
    await feed_class(1).delete()
    assert await feed_class(1).count() == 0
    assert await feed_class(1)[:] == []
    assert await feed_class(2).count() == 1


async def test_flush_drops_every_feed_and_activity_of_the_class(backend):
    feed_class = backend.feed(max_length=5)
    a, b = make_activity(1), make_activity(2)
    await feed_class(1).add(a)
    await feed_class(2).add(b)
    await feed_class.flush()
    assert await feed_class(1).count() == 0
    assert await feed_class(2).count() == 0
    assert await stored_data(feed_class, [a, b]) == [None, None]


# -- reading: slices and indexes -----------------------------------------------------


@pytest.fixture
async def thirty(backend):
    """A feed of 30 activities (numbers 0..29) and the activities, oldest first."""
    feed = backend.feed(max_length=40)(1)
    activities = [make_activity(i) for i in range(30)]
    await feed.add_many(activities)
    return feed, activities


async def test_slices_are_newest_first(thirty):
    feed, activities = thirty
    newest = newest_first(activities)
    assert ids(await feed[:25]) == newest[:25]
    assert ids(await feed[10:20]) == newest[10:20]
    assert ids(await feed[25:]) == newest[25:]
    assert ids(await feed[:]) == newest
    assert await feed[28:100] == [await feed[28], await feed[29]]
    assert await feed[30:40] == []
    assert await feed[5:5] == []
    assert await feed[7:3] == []


async def test_index_returns_one_activity_or_raises_index_error(thirty):
    feed, activities = thirty
    assert (await feed[0]).activity_id == activities[29].activity_id
    assert (await feed[3]).activity_id == activities[26].activity_id
    with pytest.raises(IndexError):
        await feed[30]


async def test_index_of_empty_feed_raises_index_error(backend):
    with pytest.raises(IndexError):
        await backend.feed(max_length=5)(1)[3]


@pytest.mark.parametrize(
    "index", [-1, slice(-3, None), slice(None, -1), slice(0, 10, 2), slice(None, None, -1)]
)
async def test_negative_indexes_and_steps_raise_value_error(thirty, index):
    feed, _ = thirty
    with pytest.raises(ValueError):
        await feed[index]


async def test_ordering_spans_id_digit_boundaries(backend):
    feed = backend.feed(max_length=10)(1)
    times = [
        datetime(1970, 1, 1, 0, 0, 0, 999999, tzinfo=UTC),
        datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC),
        datetime(1999, 12, 31, 23, 59, 59, tzinfo=UTC),
        datetime(2001, 9, 9, 1, 46, 39, 999999, tzinfo=UTC),
        datetime(2001, 9, 9, 1, 46, 40, tzinfo=UTC),
        datetime(2024, 6, 1, tzinfo=UTC),
    ]
    activities = [Activity(actor=1, verb=Pin, object=i, time=t) for i, t in enumerate(times)]
    await feed.add_many(reversed(activities))
    assert [a.time for a in await feed[:]] == times[::-1]
    assert [a.time for a in await feed.order_by("activity_id")[:]] == times


async def test_same_microsecond_activities_are_all_kept(backend):
    feed = backend.feed(max_length=50)(1)
    same_time = [make_activity(7, actor=actor, object=actor) for actor in range(20)]
    assert await feed.add_many(same_time) == 20
    assert sorted(ids(await feed[:])) == sorted(ids(same_time))


# -- filter and order_by -------------------------------------------------------------


async def test_filter_by_activity_id(thirty):
    feed, activities = thirty
    pivot = activities[10]
    newest = newest_first(activities)
    after = [i for i in newest if i > pivot.activity_id]
    before = [i for i in newest if i < pivot.activity_id]
    assert ids(await feed.filter(activity_id__gt=pivot)[:25]) == after
    assert ids(await feed.filter(activity_id__gte=pivot)[:25]) == [*after, pivot.activity_id]
    assert ids(await feed.filter(activity_id__lt=pivot.activity_id)[:25]) == before
    assert ids(await feed.filter(activity_id__lte=pivot.activity_id)[:25]) == [
        pivot.activity_id, *before]
    assert ids(await feed.filter(activity_id__lt=pivot)[:3]) == before[:3]
    assert ids(await feed.filter(activity_id__lt=pivot)[2:4]) == before[2:4]


async def test_filters_combine(thirty):
    feed, activities = thirty
    window = feed.filter(activity_id__gt=activities[5]).filter(activity_id__lte=activities[9])
    assert ids(await window[:]) == newest_first(activities[6:10])
    assert ids(await window.order_by("activity_id")[:2]) == ids(activities[6:8])
    assert (await window[0]).activity_id == activities[9].activity_id
    with pytest.raises(IndexError):
        await window[4]


async def test_filter_with_no_match_is_empty(thirty):
    feed, activities = thirty
    assert await feed.filter(activity_id__gt=activities[-1])[:] == []
    assert await feed.filter(activity_id__lt=activities[0])[:] == []


@pytest.mark.parametrize("kwargs", [{"activity_id": "x"}, {"time__gt": "x"}, {"actor": 1},
                                    {"activity_id__ne": "x"}])
async def test_unknown_filter_is_a_value_error(thirty, kwargs):
    feed, _ = thirty
    with pytest.raises(ValueError):
        feed.filter(**kwargs)


async def test_order_by_both_ways(thirty):
    feed, activities = thirty
    assert ids(await feed.order_by("activity_id")[:5]) == ids(activities[:5])
    assert ids(await feed.order_by("-activity_id")[:5]) == newest_first(activities)[:5]
    assert (await feed.order_by("activity_id")[0]).activity_id == activities[0].activity_id
    with pytest.raises(ValueError):
        feed.order_by("time")


async def test_filter_and_order_by_return_new_feeds_and_leave_the_original(thirty):
    feed, activities = thirty
    filtered = feed.filter(activity_id__lt=activities[3])
    ordered = feed.order_by("activity_id")
    assert filtered is not feed and ordered is not feed
    assert type(filtered) is type(feed) and type(ordered) is type(feed)
    assert ids(await feed[:]) == newest_first(activities)
    assert ids(await filtered[:]) == newest_first(activities[:3])
    assert ids(await ordered[:3]) == ids(activities[:3])
    ordered_then_filtered = ordered.filter(activity_id__gte=activities[27])
    assert ids(await ordered_then_filtered[:]) == ids(activities[27:])
    assert ids(await ordered[:3]) == ids(activities[:3])


# -- wrong input ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad_batch",
    [
        lambda good: [good, "not an activity"],
        lambda good: [good, {"actor": 1, "verb": 5, "object": 2}],
        lambda good: [good, None],
        lambda good: good,  # a single activity where a list is expected
        lambda good: 42,
    ],
)
async def test_add_many_with_wrong_input_raises_type_error_and_writes_nothing(backend, bad_batch):
    feed_class = backend.feed(max_length=5)
    good = make_activity(1)
    with pytest.raises(TypeError):
        await feed_class(1).add_many(bad_batch(good))
    assert await feed_class(1).count() == 0
    assert await feed_class(1)[:] == []
    assert await stored_data(feed_class, [good]) == [None]


@pytest.mark.parametrize("bad", ["an id", None, 42, {"actor": 1}])
async def test_add_with_wrong_input_raises_type_error(backend, bad):
    feed_class = backend.feed(max_length=5)
    with pytest.raises(TypeError):
        await feed_class(1).add(bad)
    assert await feed_class(1).count() == 0


async def test_activity_of_another_class_is_rejected(backend):
    feed_class = backend.feed(max_length=5, activity_class=PinActivity)
    plain = make_activity(1)
    with pytest.raises(TypeError):
        await feed_class(1).add_many([PinActivity(actor=1, verb=Pin, object=1, board_id=1), plain])
    with pytest.raises(TypeError):
        await feed_class.insert_activities([plain])
    assert await feed_class(1).count() == 0
    assert await stored_data(feed_class, [plain]) == [None]


@pytest.mark.parametrize("bad", [None, 42, 4.2])
async def test_remove_and_contains_reject_wrong_input(backend, bad):
    feed = backend.feed(max_length=5)(1)
    await feed.add(make_activity(1))
    with pytest.raises(TypeError):
        await feed.remove(bad)
    with pytest.raises(TypeError):
        await feed.remove_many([make_activity(1), bad])
    with pytest.raises(TypeError):
        await feed.contains(bad)
    assert await feed.count() == 1


# -- activity storage and hydration ------------------------------------------------------


async def test_slices_return_fully_hydrated_activities(backend):
    feed = backend.feed(max_length=5)(1)
    when = datetime(2024, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)
    original = Activity(actor="user-13", verb=Like, object=77, target="board-7", time=when,
                        extra_context={"item_id": 3, "nested": {"list": [1, "two", None]}})
    await feed.add(original)
    for loaded in (await feed[:1])[0], await feed[0]:
        assert type(loaded) is Activity
        assert loaded.model_dump() == original.model_dump()
        assert loaded.activity_id == original.activity_id
        assert loaded.verb is Like
        assert loaded.time == when


async def test_subclass_fields_round_trip(backend):
    feed_class = backend.feed(max_length=5, activity_class=PinActivity)
    original = PinActivity(actor=1, verb=Pin, object=2, board_id=42, tags=["a", "b"],
                           extra_context={"k": "v"})
    await feed_class(1).add(original)
    loaded = await feed_class(1)[0]
    assert type(loaded) is PinActivity
    assert loaded.model_dump() == original.model_dump()


async def test_add_stores_the_activity_data(backend):
    feed_class = backend.feed(max_length=5)
    a = make_activity(1)
    await feed_class(1).add(a)
    assert (await stored_data(feed_class, [a]))[0] is not None


async def test_insert_and_remove_activity(backend):
    feed_class = backend.feed(max_length=5)
    a, b, c = make_activity(1), make_activity(2), make_activity(3)
    await feed_class.insert_activity(a)
    await feed_class.insert_activities([b, c])
    assert all(data is not None for data in await stored_data(feed_class, [a, b, c]))
    await feed_class.remove_activity(b)
    await feed_class.remove_activity(c.activity_id)
    stored = await stored_data(feed_class, [a, b, c])
    assert stored[0] is not None and stored[1:] == [None, None]


async def test_fanout_add_after_insert_activities_reads_back_hydrated(backend):
    """Fanout skips the data write (the manager stored it once); reads still hydrate."""
    feed_class = backend.feed(max_length=5)
    a = make_activity(1, extra_context={"from": "fanout"})
    await feed_class.insert_activities([a])
    assert await feed_class.fanout_add([1, 2], [a]) == 2
    for user_id in (1, 2):
        loaded = await feed_class(user_id)[:]
        assert ids(loaded) == [a.activity_id]
        assert loaded[0].extra_context == {"from": "fanout"}
    assert await feed_class.fanout_remove([1, 2], [a]) == 2
    assert await feed_class(1).count() == 0
