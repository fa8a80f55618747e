"""Serializers: exact round trips (subclass fields included) and SerializationError."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from helpers import Like, Pin, make_activity

from asyncfeeds import (
    Activity,
    AggregatedActivity,
    NotificationActivity,
    SerializationError,
)
from asyncfeeds.serializers import ActivitySerializer, AggregatedSerializer


class PinActivity(Activity):
    board_id: int
    note: str | None = None
    tags: list[str] = []


def full_dump(activity: Activity) -> dict:
    return {**activity.model_dump(), "type": type(activity), "id": activity.activity_id}


@pytest.mark.parametrize(
    "activity",
    [
        make_activity(1),
        Activity(actor="u-1", verb=Like, object="o-1", target="t-1",
                 time=datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=UTC),
                 extra_context={"a": [1, 2.5, None, True], "b": {"c": "ü"}}),
        Activity(actor=2**62, verb=Pin, object=0, target=0, time=datetime(1970, 1, 1, tzinfo=UTC)),
    ],
)
def test_activity_round_trip_keeps_every_field(activity):
    serializer = ActivitySerializer()
    data = serializer.dumps(activity)
    assert isinstance(data, bytes)
    json.loads(data)  # plain JSON, nothing executable
    assert full_dump(serializer.loads(data)) == full_dump(activity)


def test_subclass_fields_round_trip():
    serializer = ActivitySerializer(PinActivity)
    activity = PinActivity(actor=1, verb=Pin, object=2, board_id=7, note="n", tags=["x", "y"],
                           extra_context={"k": 1})
    loaded = serializer.loads(serializer.dumps(activity))
    assert type(loaded) is PinActivity
    assert full_dump(loaded) == full_dump(activity)


def test_dumps_many_keys_by_activity_id():
    serializer = ActivitySerializer()
    activities = [make_activity(i) for i in range(3)]
    encoded = serializer.dumps_many(activities)
    assert list(encoded) == [a.activity_id for a in activities]
    assert [serializer.loads(v) for v in encoded.values()] == activities


def test_activity_serializer_takes_activity_classes_only():
    with pytest.raises(TypeError):
        ActivitySerializer(dict)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"not json",
        b"{",
        b"null",
        b"{}",
        b"[1, 2]",
        b'[5, 1, 2, null, 1700000000000000, {}, null, "extra"]',
        b"[9999, 1, 2, null, 1700000000000000, {}, null]",  # unknown verb id
        b'[5, 1, 2, null, "yesterday", {}, null]',
        b"[5, 1, 2, null, 1e300, {}, null]",
        b"[5, [1], 2, null, 1700000000000000, {}, null]",
        b"[5, 1, true, null, 1700000000000000, {}, null]",
        b"[5, null, 2, null, 1700000000000000, {}, null]",
        b"[5, 1, 2, {}, 1700000000000000, {}, null]",
        b"[5, 1, 2, null, 1700000000000000, [1], null]",
    ],
)
@pytest.mark.parametrize("activity_class", [Activity, PinActivity])
def test_corrupt_activity_data_is_a_serialization_error(raw, activity_class):
    with pytest.raises(SerializationError):
        ActivitySerializer(activity_class).loads(raw)


def test_missing_subclass_field_is_a_serialization_error():
    raw = ActivitySerializer().dumps(make_activity(1))
    with pytest.raises(SerializationError):
        ActivitySerializer(PinActivity).loads(raw)


def test_serialization_error_is_a_value_error():
    assert issubclass(SerializationError, ValueError)


def aggregated_serializer(cls=AggregatedActivity, activity_class=Activity):
    return AggregatedSerializer(cls, ActivitySerializer(activity_class))


def test_aggregated_round_trip_keeps_every_field():
    group = NotificationActivity(group="5-2024-01-01")
    group_activities = [make_activity(i, actor=i) for i in range(18)]
    for activity in group_activities:
        group.append(activity)
    group.seen_at = datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
    group.read_at = datetime(2024, 1, 3, tzinfo=UTC)
    serializer = aggregated_serializer(NotificationActivity)
    loaded = serializer.loads(serializer.dumps(group))
    assert type(loaded) is NotificationActivity
    assert loaded == group
    assert loaded.aggregated_id == group.aggregated_id
    assert (loaded.created_at, loaded.updated_at, loaded.seen_at, loaded.read_at) == (
        group.created_at, group.updated_at, group.seen_at, group.read_at)
    assert loaded.minimized_activities == 3
    assert loaded.activity_count == 18
    assert [full_dump(a) for a in loaded.activities] == [full_dump(a) for a in group.activities]


def test_aggregated_round_trip_with_subclass_activities():
    group = AggregatedActivity(group="g")
    group.append(PinActivity(actor=1, verb=Pin, object=2, board_id=3, time=datetime(2024, 1, 1)))
    serializer = aggregated_serializer(activity_class=PinActivity)
    loaded = serializer.loads(serializer.dumps(group))
    assert type(loaded.activities[0]) is PinActivity
    assert loaded.activities[0].board_id == 3


def test_aggregated_data_loads_from_its_seven_fields():
    loaded = aggregated_serializer().loads(b'["g", null, null, null, null, 2, []]')
    assert (loaded.group, loaded.minimized_activities, loaded.activities) == ("g", 2, [])


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"garbage",
        b"[]",
        b'{"group": "g"}',
        b'[1, null, null, null, null, 0, []]',
        b'["g", null, null, null, null, "zero", []]',
        b'["g", null, null, null, null, 0, [[1, 2]]]',
        b'["g", null, null, null, null, 0, 5]',
        b'["g", "when", null, null, null, 0, []]',
        b'["g", null, null, null, null, 0, [], "ids"]',
        b'["g", null, null, null, null, 0, [], [1]]',
        b'["g", null, null, null, null, 0]',
    ],
)
def test_corrupt_aggregated_data_is_a_serialization_error(raw):
    with pytest.raises(SerializationError):
        aggregated_serializer().loads(raw)


@pytest.mark.parametrize("activity_class", [Activity, PinActivity])
def test_rows_decode_in_one_parse_as_each_would(activity_class):
    serializer = ActivitySerializer(activity_class)
    fields = {"board_id": 3} if activity_class is PinActivity else {}
    activities = [activity_class(actor=i, verb=Pin, object=i + 1, extra_context={"n": i},
                                 time=datetime(2024, 1, 1, 0, i, tzinfo=UTC), **fields)
                  for i in range(5)]
    rows = [(a.activity_id, serializer.dumps(a)) for a in activities]
    loaded = serializer.loads_rows(rows)
    assert [full_dump(a) for a in loaded] == [full_dump(a) for a in activities]
    if activity_class is Activity:  # built without validation, as model_construct would
        assert all(a.model_fields_set == set(Activity.model_fields) for a in loaded)
    assert [a.model_dump_json() for a in loaded] == [a.model_dump_json() for a in activities]
    assert serializer.loads_rows([]) == []


@pytest.mark.parametrize("bad", [b"not json", b"1, 2", b"[5, [1], 2, null, 1700000000000000, {}]"])
def test_one_corrupt_row_fails_the_rows_with_a_serialization_error(bad):
    good = ActivitySerializer().dumps(make_activity(1))
    with pytest.raises(SerializationError, match=r"cannot decode|not valid JSON"):
        ActivitySerializer().loads_rows([("a", good), ("b", bad)])


def test_stored_activity_sets_every_field_as_validation_does():
    from asyncfeeds.activity import stored_activity

    activity = make_activity(1)
    built = stored_activity({"actor": activity.actor, "verb": activity.verb,
                             "object": activity.object, "target": activity.target,
                             "time": activity.time, "extra_context": activity.extra_context})
    assert built.model_fields_set == set(Activity.model_fields)  # as model_construct set it
    assert full_dump(built) == full_dump(activity) and built == activity


class NoteActivity(Activity):
    """A subclass without fields of its own."""


def test_activity_without_subclass_fields_is_six_fields_and_older_seven_still_load():
    activity = make_activity(1)
    data = ActivitySerializer().dumps(activity)
    assert len(json.loads(data)) == 6
    older = data[:-1] + b",null]"
    for serializer in (ActivitySerializer(), ActivitySerializer(NoteActivity)):
        assert full_dump(serializer.loads(data))["id"] == activity.activity_id
        assert serializer.loads(older) == activity
    assert type(ActivitySerializer(NoteActivity).loads(data)) is NoteActivity


def test_a_group_whose_activity_holds_the_separator_keeps_the_json_form():
    group = AggregatedActivity(group="g")
    group.append(make_activity(1))
    serializer = aggregated_serializer()
    serializer.activities.dumps = lambda activity: b'["\x1f"]'  # not JSON: a stand-in
    assert serializer.dumps(group).startswith(b'["g",')


def test_aggregated_data_in_the_compact_form_round_trips_and_takes_the_stored_ids():
    group = AggregatedActivity(group="5|x")
    for activity in [make_activity(i) for i in range(3)]:
        group.append(activity)
    serializer = aggregated_serializer()
    raw = serializer.dumps(group)
    assert raw.startswith(b"~")
    loaded = serializer.loads(raw)
    assert loaded == group and loaded.aggregated_id == group.aggregated_id
    assert [a.__dict__["activity_id"] for a in loaded.activities] == [
        a.activity_id for a in group.activities
    ]
    assert serializer.loads(raw).activities[0] is loaded.activities[0]  # decoded once


@pytest.mark.parametrize(
    "raw",
    [
        b"~",
        b"~1|2|||0|0|0|2|g",
        b"~|||x|0|0|0|1|g",
        b"~||||0|1|3|1|gab\x1f[]",
        b"~||||0|1|3|1|gab\x1f[1,2]\x1f",
        b"~||||0|2|3|1|gab\x1f[]\x1f",
        b"~||||0|1|3|1|gab\x1f[]\x1fcd\x1f",
        b"~||||0|0|0|5|g",
    ],
)
def test_corrupt_compact_aggregated_data_is_a_serialization_error(raw):
    with pytest.raises(SerializationError):
        aggregated_serializer().loads(raw)


class TaggedGroup(AggregatedActivity):
    tags: list[str] = []
    label: str = "x"


@pytest.mark.parametrize("cls", [AggregatedActivity, NotificationActivity, TaggedGroup])
def test_compact_groups_decode_like_model_construct(cls):
    group = cls(group="g")
    for activity in [make_activity(i) for i in range(3)]:
        group.append(activity)
    serializer = aggregated_serializer(cls)
    loaded = serializer.loads(serializer.dumps(group))
    expected = cls.model_construct(
        group="g",
        activities=group.activities,
        created_at=group.created_at,
        updated_at=group.updated_at,
    )
    assert type(loaded) is cls
    assert loaded.model_dump() == expected.model_dump()
    assert loaded.model_fields_set >= {"group", "activities"}
    loaded.minimized_activities = 4  # groups are not shared: each decode is its own
    assert serializer.loads(serializer.dumps(group)).minimized_activities == 0
