"""Quickstart: a flat, an aggregated and a notification feed on the memory backend.

Run it with ``python examples/quickstart.py``; no server is needed.
"""

import asyncio
from datetime import UTC, datetime, timedelta

from asyncfeeds import (
    Activity,
    MemoryAggregatedFeed,
    MemoryFeed,
    MemoryNotificationFeed,
    Verb,
    register_verb,
)


@register_verb
class Pin(Verb):
    id = 5
    infinitive = "pin"
    past_tense = "pinned"


@register_verb
class Like(Verb):
    id = 6
    infinitive = "like"
    past_tense = "liked"


class PinFeed(MemoryFeed):
    key_format = "feed:normal:{user_id}"
    max_length = 1000


class AggregatedPinFeed(MemoryAggregatedFeed):
    key_format = "feed:aggregated:{user_id}"


class UserNotificationFeed(MemoryNotificationFeed):
    key_format = "feed:notification:{user_id}"


async def main() -> None:
    noon = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    pins = [
        Activity(
            actor=actor,
            verb=Pin,
            object=100 + n,
            time=noon + timedelta(minutes=n),
            extra_context={"title": title},
        )
        for n, (actor, title) in enumerate([(2, "Ramen"), (3, "Kyoto"), (2, "Pho")])
    ]

    feed = PinFeed(13)
    assert await feed.add_many(pins) == 3
    assert await feed.add(pins[0]) == 0  # the same activity again: nothing changes
    newest = await feed[:2]
    print("flat:", [a.extra_context["title"] for a in newest])
    assert [a.activity_id for a in newest] == [pins[2].activity_id, pins[1].activity_id]
    older = await feed.filter(activity_id__lt=newest[-1])[:10]
    assert older == [pins[0]]

    aggregated = AggregatedPinFeed(13)
    await aggregated.add_many(pins)
    (group,) = await aggregated[:10]
    print(
        f"aggregated: {group.actor_count} people {group.verb.past_tense} "
        f"{group.activity_count} pins"
    )
    assert group.activity_count == 3 and group.actor_ids == [2, 3]

    notifications = UserNotificationFeed(2)
    for liker in (5, 6):
        like = Activity(actor=liker, verb=Like, object=100, time=noon + timedelta(hours=1))
        await notifications.add(like)
    assert await notifications.count_unseen() == 1  # two likes of one pin: one group
    (liked,) = await notifications[:10]
    print(
        f"notification: {liked.actor_count} people liked pin {liked.object_ids[0]}, "
        f"read={liked.is_read}"
    )
    await notifications.mark_all(seen=True, read=True)
    assert await notifications.count_unread() == 0


if __name__ == "__main__":
    asyncio.run(main())
