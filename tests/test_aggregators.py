"""Aggregators: grouping, ranking, and merge into (new, changed, deleted)."""

from __future__ import annotations

import pytest
from helpers import Like, Pin, make_activity

from asyncfeeds import (
    Activity,
    AggregatedActivity,
    BaseAggregator,
    NotificationActivity,
    NotificationAggregator,
    RecentVerbAggregator,
)

DAY = 24 * 60


def on_day(n: int, day: int, **kwargs) -> Activity:
    """Activity ``n`` at minute ``n`` of day ``day`` after BASE_TIME."""
    return make_activity(n, minutes=day * DAY + n, **kwargs)


class ByActor(BaseAggregator):
    """Groups by actor and ranks the biggest group first."""

    def get_group(self, activity: Activity) -> str:
        return f"actor-{activity.actor}"

    def rank(self, aggregated: list[AggregatedActivity]) -> list[AggregatedActivity]:
        return sorted(aggregated, key=lambda g: g.activity_count, reverse=True)


def test_recent_verb_aggregator_groups_by_verb_and_day():
    aggregator = RecentVerbAggregator()
    a = on_day(1, 0, verb=Pin)
    assert aggregator.get_group(a) == aggregator.get_group(on_day(2, 0, verb=Pin, actor=99))
    assert aggregator.get_group(a) != aggregator.get_group(on_day(3, 0, verb=Like))
    assert aggregator.get_group(a) != aggregator.get_group(on_day(1, 1, verb=Pin))


def test_notification_aggregator_groups_by_verb_object_and_day():
    aggregator = NotificationAggregator()
    a = on_day(1, 0, object=7)
    assert aggregator.get_group(a) == aggregator.get_group(on_day(2, 0, object=7, actor=50))
    assert aggregator.get_group(a) != aggregator.get_group(on_day(3, 0, object=8))
    assert aggregator.get_group(a) != aggregator.get_group(on_day(4, 0, object=7, verb=Like))
    assert aggregator.get_group(a) != aggregator.get_group(on_day(1, 1, object=7))


def test_aggregate_builds_groups_ranked_most_recent_first():
    activities = [
        on_day(1, 0, verb=Pin), on_day(2, 0, verb=Pin), on_day(3, 0, verb=Like),
        on_day(4, 1, verb=Pin), on_day(5, 1, verb=Like), on_day(6, 1, verb=Like),
    ]
    groups = RecentVerbAggregator().aggregate(reversed(activities))
    assert [[a.activity_id for a in g.activities] for g in groups] == [
        [activities[4].activity_id, activities[5].activity_id],
        [activities[3].activity_id],
        [activities[2].activity_id],
        [activities[0].activity_id, activities[1].activity_id],
    ]
    assert all(type(g) is AggregatedActivity for g in groups)


def test_aggregate_skips_duplicates():
    a = on_day(1, 0)
    groups = RecentVerbAggregator().aggregate([a, a, on_day(1, 0, extra_context={"x": 1})])
    assert len(groups) == 1
    assert groups[0].activity_count == 1


def test_group_activities_keys_groups_by_group():
    aggregator = RecentVerbAggregator()
    a, b = on_day(1, 0), on_day(2, 1)
    groups = aggregator.group_activities([a, b])
    assert set(groups) == {aggregator.get_group(a), aggregator.get_group(b)}
    assert groups[aggregator.get_group(b)].activities == [b]


def test_notification_aggregator_builds_notification_activities():
    groups = NotificationAggregator().aggregate([on_day(1, 0), on_day(2, 0)])
    assert all(isinstance(g, NotificationActivity) for g in groups)


def test_custom_aggregator_grouping_and_rank():
    activities = [make_activity(i, actor=0 if i < 3 else 1) for i in range(5)]
    assert [g.group for g in ByActor().aggregate(activities)] == ["actor-0", "actor-1"]
    by_recency = BaseAggregator.rank(ByActor(), ByActor().aggregate(activities))
    assert [g.group for g in by_recency] == ["actor-1", "actor-0"]


def test_base_aggregator_needs_get_group():
    with pytest.raises(NotImplementedError):
        BaseAggregator().aggregate([make_activity(1)])


def test_aggregated_activity_class_can_be_passed_in():
    groups = RecentVerbAggregator(NotificationActivity).aggregate([make_activity(1)])
    assert type(groups[0]) is NotificationActivity


def test_merge_reports_new_changed_and_deleted():
    aggregator = RecentVerbAggregator()
    pin1, pin2, like1 = on_day(1, 0, verb=Pin), on_day(2, 0, verb=Pin), on_day(3, 0, verb=Like)
    current = aggregator.aggregate([pin1])
    new, changed, deleted = aggregator.merge(current, [pin2, like1])
    assert [g.activities for g in new] == [[like1]]
    assert len(changed) == 1
    old, updated = changed[0]
    assert old is current[0]
    assert old.activities == [pin1]  # the current group is left untouched
    assert updated.activities == [pin1, pin2]
    assert updated.aggregated_id == old.aggregated_id
    assert deleted == []


def test_merge_of_held_activities_changes_nothing():
    aggregator = RecentVerbAggregator()
    pin1 = on_day(1, 0)
    current = aggregator.aggregate([pin1])
    assert aggregator.merge(current, [pin1]) == ([], [], [])


def test_merge_into_nothing_creates_groups():
    aggregator = RecentVerbAggregator()
    new, changed, deleted = aggregator.merge([], [on_day(1, 0), on_day(2, 0), on_day(3, 1)])
    assert sorted(g.activity_count for g in new) == [1, 2]
    assert (changed, deleted) == ([], [])


def test_merge_several_activities_into_one_group_gives_one_change():
    aggregator = RecentVerbAggregator()
    current = aggregator.aggregate([on_day(1, 0)])
    _, changed, _ = aggregator.merge(current, [on_day(2, 0), on_day(3, 0), on_day(4, 0)])
    assert len(changed) == 1
    assert changed[0][1].activity_count == 4


def test_merge_counts_past_the_cap():
    aggregator = RecentVerbAggregator()
    current = aggregator.aggregate([on_day(i, 0, actor=i) for i in range(15)])
    _, changed, _ = aggregator.merge(current, [on_day(i, 0, actor=i) for i in range(15, 20)])
    updated = changed[0][1]
    assert len(updated.activities) == 15
    assert updated.minimized_activities == 5
    assert updated.activity_count == 20


def test_merge_counts_late_activities_older_than_the_kept_window():
    """Out-of-order arrivals (concurrent fanout, follow copies) into a capped group all count."""
    aggregator = RecentVerbAggregator()
    activities = [on_day(i, 0, actor=i) for i in range(20)]
    current = aggregator.aggregate(activities[5:])
    _, changed, _ = aggregator.merge(current, activities[4:5])
    _, changed, _ = aggregator.merge([changed[0][1]], activities[:4])
    updated = changed[0][1]
    assert updated.activity_count == 20
    assert [a.activity_id for a in updated.activities] == [
        a.activity_id for a in activities[5:]]
