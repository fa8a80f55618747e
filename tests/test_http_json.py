"""JSON for HTTP APIs: our models are the response models, and a dump validates back.

No web framework here: what a FastAPI response model needs is pydantic's JSON
dump and JSON schema, checked directly.
"""

from __future__ import annotations

from typing import Any

import orjson
from helpers import BASE_TIME, Backend, Like, Pin, make_activity

from asyncfeeds import Activity, MemoryNotificationFeed, NotificationActivity, Page


class PinActivity(Activity):
    board_id: int
    board_name: str = ""


def _through_json(dump: dict[str, Any]) -> dict[str, Any]:
    """What a client sends back: the dump after a trip through JSON text."""
    decoded: dict[str, Any] = orjson.loads(orjson.dumps(dump))
    return decoded


def test_a_subclass_dump_validates_back_to_its_own_class() -> None:
    pin = PinActivity(actor=13, verb=Pin, object=1, target=7, time=BASE_TIME,
                      extra_context={"title": "Ramen"}, board_id=7, board_name="Cooking")
    dump = _through_json(pin.model_dump(mode="json"))
    assert dump["activity_id"] == pin.activity_id and dump["verb"] == "pin"
    assert dump["board_id"] == 7 and dump["board_name"] == "Cooking"
    again = PinActivity.model_validate(dump)
    assert type(again) is PinActivity
    assert again == pin and again.activity_id == pin.activity_id
    assert (again.board_id, again.board_name, again.verb) == (7, "Cooking", Pin)
    assert again.extra_context == {"title": "Ramen"} and again.time == pin.time
    assert PinActivity.model_validate_json(pin.model_dump_json()) == pin


async def test_notification_items_dump_their_state_and_validate_back(
    memory_backend: Backend,
) -> None:
    feed_class: type[MemoryNotificationFeed] = memory_backend.feed("notification")
    feed = feed_class(1)
    for n in range(3):
        await feed.add(make_activity(n, verb=Like, object=9))
    (group,) = await feed[:10]
    await feed.mark_activity(group.aggregated_id, seen=True)
    (group,) = await feed[:10]
    dump = _through_json(group.model_dump(mode="json"))
    assert (dump["is_seen"], dump["is_read"]) == (True, False)
    assert dump["aggregated_id"] == group.aggregated_id
    assert (dump["activity_count"], dump["actor_count"], dump["verb"]) == (3, 3, "like")
    again = NotificationActivity.model_validate(dump)
    assert type(again) is NotificationActivity
    assert again == group and (again.is_seen, again.is_read) == (True, False)
    assert again.aggregated_id == group.aggregated_id
    assert [a.activity_id for a in again.activities] == [a.activity_id for a in group.activities]


def test_page_schema_names_the_item_fields() -> None:
    validation = Page[PinActivity].model_json_schema()
    assert set(validation["properties"]) == {"items", "next_cursor"}
    item = validation["$defs"]["PinActivity"]
    assert {"actor", "verb", "object", "target", "time", "extra_context", "board_id",
            "board_name"} <= set(item["properties"])
    assert {"actor", "verb", "object", "board_id"} <= set(item["required"])
    # A response model is dumped: its schema also names the ids a client pages with.
    serialization = Page[PinActivity].model_json_schema(mode="serialization")
    dumped = serialization["$defs"]["PinActivity"]["properties"]
    assert dumped["activity_id"]["type"] == "string" and dumped["verb"]["type"] == "string"
    notification = Page[NotificationActivity].model_json_schema(mode="serialization")
    fields = set(notification["$defs"]["NotificationActivity"]["properties"])
    assert {"aggregated_id", "activity_count", "actor_count", "verb", "is_seen",
            "is_read"} <= fields
