"""Aggregators decide which group an activity joins and how groups are ranked."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from .activity import Activity, AggregatedActivity, NotificationActivity
from .exceptions import DuplicateActivityError

Change = tuple[AggregatedActivity, AggregatedActivity]


class BaseAggregator:
    """Groups activities into aggregated activities; subclass and implement ``get_group``."""

    aggregated_activity_class: type[AggregatedActivity] = AggregatedActivity

    def __init__(self, aggregated_activity_class: type[AggregatedActivity] | None = None) -> None:
        if aggregated_activity_class is not None:
            self.aggregated_activity_class = aggregated_activity_class

    def get_group(self, activity: Activity) -> str:
        """The group key of one activity."""
        raise NotImplementedError

    def rank(self, aggregated: list[AggregatedActivity]) -> list[AggregatedActivity]:
        """Order groups for display; the default puts the most recently updated first."""
        return sorted(aggregated, key=_updated_key, reverse=True)

    def group_activities(self, activities: Iterable[Activity]) -> dict[str, AggregatedActivity]:
        """Build fresh groups keyed by group from activities (duplicates are skipped)."""
        groups: dict[str, AggregatedActivity] = {}
        for activity in sorted(activities, key=lambda a: a.activity_id):
            group = self.get_group(activity)
            aggregated = groups.get(group)
            if aggregated is None:
                aggregated = groups[group] = self.aggregated_activity_class(group=group)
            if not aggregated.contains(activity):
                aggregated.append(activity)
        return groups

    def aggregate(self, activities: Iterable[Activity]) -> list[AggregatedActivity]:
        """Group activities and return the groups ranked."""
        return self.rank(list(self.group_activities(activities).values()))

    def merge(
        self,
        current: Sequence[AggregatedActivity],
        activities: Iterable[Activity],
    ) -> tuple[list[AggregatedActivity], list[Change], list[AggregatedActivity]]:
        """Merge activities into existing groups.

        Feeds pass only activities they do not hold (their index knows every
        activity of every group, the minimized ones too). Returns
        ``(new, changed, deleted)``: groups created, ``(old, new)`` pairs of groups
        that took activities, and groups replaced (always empty here; subclasses
        may retire groups).
        """
        by_group: dict[str, AggregatedActivity] = {}
        for aggregated in current:
            newest = by_group.get(aggregated.group)
            if newest is None or _updated_key(aggregated) > _updated_key(newest):
                by_group[aggregated.group] = aggregated
        new: dict[str, AggregatedActivity] = {}
        changed: dict[str, Change] = {}
        for activity in sorted(activities, key=lambda a: a.activity_id):
            group = self.get_group(activity)
            if group in new:
                target = new[group]
            elif group in changed:
                target = changed[group][1]
            elif group in by_group:
                existing = by_group[group]
                if existing.contains(activity):
                    continue
                target = existing.model_copy(update={"activities": list(existing.activities)})
                changed[group] = (existing, target)
            else:
                target = new[group] = self.aggregated_activity_class(group=group)
            try:
                target.append(activity)
            except DuplicateActivityError:
                continue
        return list(new.values()), list(changed.values()), []


class RecentVerbAggregator(BaseAggregator):
    """Groups by verb and calendar day (UTC), most recently updated group first."""

    def get_group(self, activity: Activity) -> str:
        return f"{activity.verb.id}-{activity.time.date().isoformat()}"


class NotificationAggregator(RecentVerbAggregator):
    """Groups by verb, object and day, as "5 people liked your pin today"."""

    aggregated_activity_class = NotificationActivity

    def get_group(self, activity: Activity) -> str:
        return f"{activity.verb.id}-{activity.object}-{activity.time.date().isoformat()}"


def _updated_key(aggregated: AggregatedActivity) -> Any:
    last = aggregated.last_activity
    return (aggregated.updated_at is not None, aggregated.updated_at, last and last.activity_id)

