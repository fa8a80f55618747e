"""``NotificationFeed``: an aggregated feed that tracks which groups are unseen and unread."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

from typing_extensions import TypeVar

from ..activity import AggregatedActivity, NotificationActivity
from ..aggregators import BaseAggregator, NotificationAggregator
from ..types import Subscription
from .aggregated import AggregatedFeed
from .base import assign_item_class

NotificationT = TypeVar("NotificationT", bound=NotificationActivity, default=NotificationActivity)
"""The notification activity class of a notification feed (its items)."""


class NotificationFeed(AggregatedFeed[NotificationT]):
    """New and changed groups are unseen and unread until marked."""

    aggregator_class: ClassVar[type[BaseAggregator]] = NotificationAggregator
    aggregated_activity_class: ClassVar[type[AggregatedActivity]] = NotificationActivity
    max_length: ClassVar[int] = 99
    key_format: ClassVar[str] = "notification:{user_id}"
    tracks_markers: ClassVar[bool] = True
    page_kind: ClassVar[str] = "notification"

    @classmethod
    def bind_item_class(cls, item_class: type[Any]) -> None:
        """Set ``aggregated_activity_class`` from the generic argument (see ``Feed``)."""
        assign_item_class(cls, "aggregated_activity_class", NotificationActivity, item_class)

    async def _decorate(self, groups: list[NotificationT]) -> list[NotificationT]:
        """Fill in ``is_seen`` and ``is_read`` of the groups read."""
        if groups:
            states = await self.get_group_storage().marker_state(
                self.key, [g.aggregated_id for g in groups]
            )
            for group, (seen, read) in zip(groups, states, strict=True):
                group.is_seen = seen
                group.is_read = read
        return groups

    async def count_unseen(self) -> int:
        """How many groups are unseen."""
        return (await self.get_group_storage().marker_counts(self.key))["unseen_count"]

    async def count_unread(self) -> int:
        """How many groups are unread."""
        return (await self.get_group_storage().marker_counts(self.key))["unread_count"]

    async def mark_activity(
        self, aggregated_id: str, seen: bool = True, read: bool = False
    ) -> None:
        """Mark one group; ``False`` leaves that state as it is."""
        await self.mark_activities([aggregated_id], seen=seen, read=read)

    async def mark_activities(
        self,
        aggregated_ids: Iterable[str | AggregatedActivity],
        seen: bool = True,
        read: bool = False,
    ) -> None:
        """Mark several groups; ``False`` leaves that state as it is."""
        if isinstance(aggregated_ids, str | AggregatedActivity):
            raise TypeError("mark_activities takes an iterable of aggregated ids")
        ids = [_aggregated_id(i) for i in aggregated_ids]
        if ids and (seen or read):
            await self.get_group_storage().mark(self.key, ids, seen=seen, read=read)

    async def mark_all(self, seen: bool = True, read: bool = False) -> None:
        """Mark every group; ``False`` leaves that state as it is."""
        if seen or read:
            await self.get_group_storage().mark(self.key, None, seen=seen, read=read)

    def subscribe(self) -> Subscription:
        """The counts ``{"unseen_count": n, "unread_count": m}`` now, then after each change.

        ``async with feed.subscribe() as updates:`` (or the first ``anext``) waits
        until the server confirmed the subscription, so no change is missed; a
        cancelled ``anext`` (a heartbeat timeout) does not end it, ``aclose()`` does.
        """
        return self.get_group_storage().subscribe(self.key)


def _aggregated_id(value: str | AggregatedActivity) -> str:
    if isinstance(value, AggregatedActivity):
        return value.aggregated_id
    if isinstance(value, str):
        return value
    raise TypeError(f"expected an aggregated id, got {type(value).__name__}")
