"""Shared type aliases and TypedDicts of the public API, kept free of any implementation."""

from __future__ import annotations

from typing import Literal, Protocol

from typing_extensions import TypedDict  # pydantic needs it on Python < 3.12 for models

UserId = int | str
"""A user's id: an ``int`` and its decimal string name the same feed."""

Operation = Literal["add", "remove", "update"]
"""What a fanout chunk does to its follower feeds (``"update"`` only from
``Manager.update_user_activities``)."""

OPERATIONS: tuple[Operation, ...] = ("add", "remove", "update")


class Counts(TypedDict):
    """A notification feed's badge numbers: how many groups are unseen and unread."""

    unseen_count: int
    unread_count: int


class Subscription(Protocol):
    """What ``NotificationFeed.subscribe()`` returns on every backend: an async iterator of counts.

    ``async with feed.subscribe() as updates:`` is live on entry (so is the
    first ``anext``): the first item is the counts at that moment, then one
    item per change. Cancelling a pending ``anext`` does not end it;
    ``aclose()`` (or leaving ``async with``) does and releases its connection.
    """

    def __aiter__(self) -> Subscription: ...

    async def __anext__(self) -> Counts: ...

    async def aclose(self) -> None:
        """End the subscription and release its connection; safe to call twice."""

    async def __aenter__(self) -> Subscription: ...

    async def __aexit__(self, *exc_info: object) -> None: ...
