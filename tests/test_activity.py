"""Activity model: validation, id reduction, verbs, time, ids, equality; AggregatedActivity."""

from __future__ import annotations

import inspect
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

import pytest
from helpers import BASE_TIME, Like, Pin, make_activity
from pydantic import ValidationError

from asyncfeeds import (
    Activity,
    ActivityNotFoundError,
    AggregatedActivity,
    DuplicateActivityError,
    NotificationActivity,
    Verb,
)


@dataclass
class User:
    id: int | str


def error_fields(exc: ValidationError) -> set[str]:
    """The top-level field names a validation error points at."""
    return {str(e["loc"][0]) for e in exc.errors()}


# -- validation --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"verb": "no-such-verb"}, "verb"),
        ({"verb": 9999}, "verb"),
        ({"verb": None}, "verb"),
        ({"extra_context": {"x": object()}}, "extra_context"),
        ({"extra_context": {"x": {1, 2}}}, "extra_context"),
        ({"extra_context": {"x": b"bytes"}}, "extra_context"),
        ({"extra_context": {"when": datetime(2024, 1, 1)}}, "extra_context"),
        ({"extra_context": {"x": [1, float("nan")]}}, "extra_context"),
        ({"extra_context": {"x": float("inf")}}, "extra_context"),
        ({"extra_context": {1: "int key"}}, "extra_context"),
        ({"extra_context": ["not", "a", "dict"]}, "extra_context"),
        ({"actor": None}, "actor"),
        ({"actor": True}, "actor"),
        ({"actor": 1.5}, "actor"),
        ({"actor": ""}, "actor"),
        ({"object": [1]}, "object"),
        ({"object": User(id=2.5)}, "object"),
        ({"target": ""}, "target"),
        ({"target": {"id": 1}}, "target"),
        ({"time": "not a time"}, "time"),
    ],
)
def test_bad_input_is_a_validation_error_naming_the_field(overrides, field):
    fields = {"actor": 1, "verb": Pin, "object": 2, **overrides}
    with pytest.raises(ValidationError) as info:
        Activity(**fields)
    assert error_fields(info.value) == {field}
    assert field in str(info.value)


@pytest.mark.parametrize("missing", ["actor", "verb", "object"])
def test_missing_required_field_is_a_validation_error(missing):
    fields = {"actor": 1, "verb": Pin, "object": 2}
    del fields[missing]
    with pytest.raises(ValidationError) as info:
        Activity(**fields)
    assert error_fields(info.value) == {missing}


def test_unregistered_verb_class_is_rejected():
    class Unregistered(Verb):
        id = 4242
        infinitive = "unregistered"

    with pytest.raises(ValidationError) as info:
        Activity(actor=1, verb=Unregistered, object=2)
    assert error_fields(info.value) == {"verb"}


def test_json_extra_context_is_accepted_as_given():
    context = {"s": "x", "i": 3, "f": 1.5, "b": True, "n": None, "l": [1, "a"], "d": {"k": [{}]}}
    assert Activity(actor=1, verb=Pin, object=2, extra_context=context).extra_context == context


def test_target_is_optional_and_extra_context_defaults_empty():
    a = Activity(actor=1, verb=Pin, object=2)
    assert a.target is None
    assert a.extra_context == {}


# -- ids of actors, objects, targets -------------------------------------------------


def test_objects_with_an_id_are_reduced_to_the_id():
    a = Activity(actor=User(13), verb=Pin, object=User("board-1"), target=User(7))
    assert (a.actor, a.object, a.target) == (13, "board-1", 7)
    assert a == Activity(actor=13, verb=Pin, object="board-1", target=7, time=a.time)


def test_int_and_str_ids_are_kept_apart():
    a = Activity(actor=1, verb=Pin, object=2, time=BASE_TIME)
    b = Activity(actor="1", verb=Pin, object=2, time=BASE_TIME)
    assert a.actor == 1 and b.actor == "1"
    assert a.activity_id != b.activity_id


# -- verbs -------------------------------------------------------------------------


@pytest.mark.parametrize("verb", [Pin, Pin(), 5, "pin"], ids=["class", "instance", "id", "name"])
def test_verb_forms_normalise_to_the_registered_class(verb):
    assert Activity(actor=1, verb=verb, object=2).verb is Pin


def test_verb_form_does_not_change_the_id():
    ids = {Activity(actor=1, verb=v, object=2, time=BASE_TIME).activity_id
           for v in (Pin, Pin(), 5, "pin")}
    assert len(ids) == 1


# -- time --------------------------------------------------------------------------


def test_naive_time_is_taken_as_utc():
    a = Activity(actor=1, verb=Pin, object=2, time=datetime(2024, 5, 1, 12, 30))
    assert a.time == datetime(2024, 5, 1, 12, 30, tzinfo=UTC)
    assert a.time.utcoffset() == timedelta(0)


def test_aware_time_is_converted_to_utc():
    plus_two = timezone(timedelta(hours=2))
    a = Activity(actor=1, verb=Pin, object=2, time=datetime(2024, 5, 1, 12, 30, tzinfo=plus_two))
    assert a.time.utcoffset() == timedelta(0)
    assert (a.time.hour, a.time.minute) == (10, 30)


def test_time_defaults_to_now_in_utc():
    before = datetime.now(UTC)
    a = Activity(actor=1, verb=Pin, object=2)
    after = datetime.now(UTC)
    assert a.time.utcoffset() == timedelta(0)
    assert before <= a.time <= after


def test_time_keeps_microseconds():
    t = datetime(2024, 5, 1, 12, 30, 1, 123456, tzinfo=UTC)
    assert Activity(actor=1, verb=Pin, object=2, time=t).time.microsecond == 123456


def test_same_wall_time_in_other_zone_gives_the_same_id():
    plus_two = timezone(timedelta(hours=2))
    a = Activity(actor=1, verb=Pin, object=2, time=datetime(2024, 5, 1, 12, tzinfo=plus_two))
    b = Activity(actor=1, verb=Pin, object=2, time=datetime(2024, 5, 1, 10))
    assert a.activity_id == b.activity_id


# -- activity ids ------------------------------------------------------------------


def test_activity_id_is_a_str_and_serialization_id_is_its_alias():
    a = make_activity(1)
    assert isinstance(a.activity_id, str)
    assert a.serialization_id == a.activity_id


def test_activity_id_is_deterministic():
    fields = {"actor": 13, "verb": Pin, "object": 1, "target": 7, "time": BASE_TIME}
    a = Activity(**fields, extra_context={"x": 1})
    b = Activity(**fields, extra_context={"x": 2})
    assert a.activity_id == b.activity_id == Activity(**fields).activity_id


@pytest.mark.parametrize(
    "change",
    [{"actor": 14}, {"verb": Like}, {"object": 2}, {"target": 8}, {"target": None},
     {"time": BASE_TIME + timedelta(microseconds=1)}],
)
def test_activity_id_depends_on_each_identity_field(change):
    fields = {"actor": 13, "verb": Pin, "object": 1, "target": 7, "time": BASE_TIME}
    assert Activity(**fields).activity_id != Activity(**{**fields, **change}).activity_id


def test_ids_are_unique_within_the_same_microsecond():
    same_time = [
        Activity(actor=actor, verb=verb, object=obj, target=target, time=BASE_TIME)
        for actor in range(10)
        for verb in (Pin, Like)
        for obj in (1, "1", 2)
        for target in (None, 1, 2)
    ]
    assert len({a.activity_id for a in same_time}) == len(same_time)


def test_ids_sort_chronologically_across_digit_boundaries():
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    times = [
        epoch,
        epoch + timedelta(microseconds=9),
        epoch + timedelta(microseconds=10),
        epoch + timedelta(microseconds=999_999),
        epoch + timedelta(seconds=1),
        datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2000, 1, 1, tzinfo=UTC),
        datetime(2001, 9, 9, 1, 46, 39, 999999, tzinfo=UTC),  # 10**9 s - 1 us
        datetime(2001, 9, 9, 1, 46, 40, tzinfo=UTC),  # epoch seconds gain a digit
        datetime(2286, 11, 20, 17, 46, 39, 999999, tzinfo=UTC),
        datetime(2286, 11, 20, 17, 46, 40, tzinfo=UTC),  # and again (10**10 s)
    ]
    activities = [Activity(actor=1, verb=Pin, object=2, time=t) for t in reversed(times)]
    assert [a.time for a in sorted(activities, key=lambda a: a.activity_id)] == times


def test_ids_sort_chronologically_for_random_times():
    rng = random.Random(8)
    span = int((datetime(2100, 1, 1) - datetime(1970, 1, 1)).total_seconds() * 1e6)
    activities = [
        Activity(
            actor=rng.randrange(10**9),
            verb=rng.choice((Pin, Like)),
            object=rng.choice((rng.randrange(10**12), f"obj{rng.randrange(99)}")),
            time=datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=rng.randrange(span)),
        )
        for _ in range(2000)
    ]
    by_id = [a.time for a in sorted(activities, key=lambda a: a.activity_id)]
    assert by_id == sorted(by_id)


def test_ids_of_one_microsecond_sort_between_neighbours():
    before = make_activity(0, minutes=0)
    same = [make_activity(i, minutes=1) for i in range(20)]
    after = make_activity(0, minutes=2)
    ids = sorted(a.activity_id for a in [after, *same, before])
    assert ids[0] == before.activity_id and ids[-1] == after.activity_id


# -- equality ----------------------------------------------------------------------


def test_equality_and_hash_are_by_activity_id():
    a = make_activity(1, extra_context={"v": 1})
    b = make_activity(1, extra_context={"v": 2})
    c = make_activity(2)
    assert a == b and hash(a) == hash(b)
    assert a != c
    assert len({a, b, c}) == 2
    assert a != a.activity_id


def test_subclass_keeps_and_validates_extra_fields():
    class PinActivity(Activity):
        board_id: int

    a = PinActivity(actor=1, verb=Pin, object=2, board_id=9)
    assert a.board_id == 9
    with pytest.raises(ValidationError) as info:
        PinActivity(actor=1, verb=Pin, object=2, board_id="not a number")
    assert error_fields(info.value) == {"board_id"}


# -- Stream Framework's positional form -------------------------------------------


def test_positional_form_is_the_keyword_form():
    context = {"item_id": 3}
    positional = Activity(13, Pin, 1, 7, BASE_TIME, context)
    keywords = Activity(actor=13, verb=Pin, object=1, target=7, time=BASE_TIME,
                        extra_context=context)
    assert positional.model_dump() == keywords.model_dump()
    assert positional.activity_id == keywords.activity_id
    mixed = Activity(User(13), "pin", User(1), User(7), time=BASE_TIME, extra_context=context)
    assert mixed.model_dump() == keywords.model_dump()


def test_none_time_is_now_and_none_extra_context_is_empty():
    before = datetime.now(UTC)
    a = Activity(13, Pin, 1, None, time=None, extra_context=None)
    assert before <= a.time <= datetime.now(UTC)
    assert (a.target, a.extra_context) == (None, {})


def test_positional_values_are_validated_like_keywords():
    with pytest.raises(ValidationError) as info:
        Activity(13, "no-such-verb", 1)
    assert error_fields(info.value) == {"verb"}
    with pytest.raises(ValidationError) as info:
        Activity(13, Pin)
    assert error_fields(info.value) == {"object"}
    with pytest.raises(TypeError, match="multiple values"):
        Activity(13, Pin, 1, actor=14)  # type: ignore[misc]
    with pytest.raises(TypeError, match="positional"):
        Activity(13, Pin, 1, 7, BASE_TIME, {}, "one too many")  # type: ignore[misc]


def test_the_signature_is_stream_frameworks():
    names = list(inspect.signature(Activity).parameters)
    assert names == ["actor", "verb", "object", "target", "time", "extra_context"]


def test_actor_object_and_target_ids_are_read_only_aliases():
    a = Activity(User(13), Pin, User("board-1"), time=BASE_TIME)
    assert (a.actor_id, a.object_id, a.target_id) == (13, "board-1", None)
    assert Activity(13, Pin, 1, 7).target_id == 7
    for name in ("actor_id", "object_id", "target_id"):
        with pytest.raises((AttributeError, ValidationError)):
            setattr(a, name, 99)
    assert "actor_id" not in a.model_dump()


def test_subclasses_take_the_positional_form_and_their_fields_by_keyword():
    class PinActivity(Activity):
        board_id: int

    a = PinActivity(13, Pin, 1, 7, time=BASE_TIME, board_id=9)
    assert a == PinActivity(actor=13, verb=Pin, object=1, target=7, time=BASE_TIME, board_id=9)
    assert (a.board_id, a.actor_id) == (9, 13)
    with pytest.raises(ValidationError) as info:
        PinActivity(13, Pin, 1)
    assert error_fields(info.value) == {"board_id"}


def test_validation_copy_and_construct_bypass_the_constructor():
    a = Activity(13, Pin, 1, 7, BASE_TIME, {"item_id": 3})
    assert Activity.model_validate(a.model_dump()) == a
    assert Activity.model_validate_json(a.model_dump_json()) == a
    with pytest.raises(ValidationError) as info:  # validation itself is unchanged
        Activity.model_validate({"actor": 13, "verb": "pin", "object": 1, "time": None})
    assert error_fields(info.value) == {"time"}
    assert a.model_copy(update={"target": 8}).target_id == 8
    assert Activity.model_construct(actor=1, verb=Pin, object=2).actor_id == 1
    group = AggregatedActivity.model_validate({"group": "g", "activities": [a.model_dump()]})
    assert group.activities == [a]
    with pytest.raises(ValidationError):
        a.actor = 14  # type: ignore[misc]


# -- AggregatedActivity -----------------------------------------------------------


def group_of(*activities: Activity, cls: type[AggregatedActivity] = AggregatedActivity):
    group = cls(group="g")
    for activity in activities:
        group.append(activity)
    return group


def test_aggregated_properties():
    a1 = make_activity(1, actor=10, object=100)
    a2 = make_activity(2, actor=20, object=100, verb=Like)
    a3 = make_activity(3, actor=10, object=300)
    group = group_of(a1, a2, a3)
    assert group.activities == [a1, a2, a3]
    assert group.activity_count == 3
    assert group.actor_ids == [10, 20]
    assert group.actor_count == 2
    assert group.other_actor_count == 0
    assert group.object_ids == [300, 100]
    assert group.verbs == [Pin, Like]
    assert group.verb is Pin
    assert group.last_activity == a3
    assert group.last_activities == [a3, a2, a1]
    assert group.created_at == a1.time
    assert group.updated_at == a3.time
    assert group.minimized_activities == 0
    assert isinstance(group.aggregated_id, str)


def test_other_actor_count_counts_beyond_two():
    group = group_of(*(make_activity(i, actor=i) for i in range(5)))
    assert group.actor_count == 5
    assert group.other_actor_count == 3


def test_activities_are_kept_oldest_first_whatever_the_append_order():
    a1, a2, a3 = (make_activity(i) for i in (1, 2, 3))
    group = group_of(a3, a1, a2)
    assert group.activities == [a1, a2, a3]
    assert group.last_activity == a3
    assert group.updated_at == a3.time


def test_aggregated_id_is_stable_as_the_group_grows():
    group = group_of(make_activity(1))
    before = group.aggregated_id
    group.append(make_activity(2))
    group.append(make_activity(3))
    assert group.aggregated_id == before
    assert group.serialization_id == before


def test_at_most_fifteen_activities_are_kept_and_the_rest_counted():
    assert AggregatedActivity.max_aggregated_activities_length == 15
    activities = [make_activity(i, actor=i) for i in range(20)]
    group = group_of(*activities)
    assert group.activities == activities[5:]
    assert group.minimized_activities == 5
    assert group.activity_count == 20


def test_cap_keeps_the_newest_when_an_old_activity_arrives_late():
    activities = [make_activity(i, actor=i) for i in range(16)]
    group = group_of(*activities[1:])
    group.append(activities[0])
    assert group.activities == activities[1:]
    assert group.minimized_activities == 1
    assert group.activity_count == 16


def test_append_of_a_new_activity_older_than_the_kept_window_counts_it():
    activities = [make_activity(i, actor=i) for i in range(17)]
    group = group_of(*activities[1:])
    group.append(activities[0])
    assert group.activity_count == 17
    assert group.minimized_activities == 2


def test_append_of_a_duplicate_raises():
    a = make_activity(1)
    group = group_of(a)
    with pytest.raises(DuplicateActivityError):
        group.append(make_activity(1, extra_context={"other": True}))
    assert group.activity_count == 1


def test_remove_and_contains():
    a1, a2, a3 = (make_activity(i) for i in (1, 2, 3))
    group = group_of(a1, a2, a3)
    assert group.contains(a2) and group.contains(a2.activity_id)
    group.remove(a2)
    assert not group.contains(a2)
    group.remove(a3.activity_id)
    assert group.activities == [a1]
    assert group.updated_at == a1.time
    with pytest.raises(ActivityNotFoundError):
        group.remove(a2)


def test_remove_many_is_all_or_nothing():
    a1, a2, a3 = (make_activity(i) for i in (1, 2, 3))
    group = group_of(a1, a2)
    with pytest.raises(ActivityNotFoundError):
        group.remove_many([a1, a3])
    assert group.activities == [a1, a2]
    group.remove_many([a1, a2.activity_id])
    assert group.activities == []
    assert group.activity_count == 0


def test_notification_activity_defaults_to_unseen_and_unread():
    group = group_of(make_activity(1), cls=NotificationActivity)
    assert isinstance(group, AggregatedActivity)
    assert group.is_seen is False
    assert group.is_read is False
