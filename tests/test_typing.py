"""What a user's type checker sees: mypy --strict on a small app written against the README.

The app below uses the public API the way the README shows it; mypy (run from the
test's virtualenv, as a user's CI would) must report no error, and its
``reveal_type`` lines must show the item types of slices, pages and single items.
The runtime side of the generic argument (``activity_class`` set from it) is tested
here too, since the two must agree.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from asyncfeeds import (
    Activity,
    AggregatedActivity,
    MemoryAggregatedFeed,
    MemoryFeed,
    MemoryNotificationFeed,
    NotificationActivity,
    RedisFeed,
)

ROOT = Path(__file__).resolve().parent.parent

USER_APP = '''
from __future__ import annotations

from datetime import UTC, datetime

from arq.connections import ArqRedis

from asyncfeeds import (
    Activity,
    AggregatedActivity,
    Counts,
    FanoutPriority,
    Manager,
    NotificationActivity,
    Page,
    RedisAggregatedFeed,
    RedisFeed,
    RedisNotificationFeed,
    Verb,
    register_verb,
)
from asyncfeeds.fanout import create_queue


class Pin(Verb):
    id = 5
    infinitive = "pin"
    past_tense = "pinned"


register_verb(Pin)


class PinActivity(Activity):
    board_id: int


class PinFeed(RedisFeed):
    key_format = "feed:normal:{user_id}"
    max_length = 1000


class BoardFeed(RedisFeed[PinActivity]):
    key_format = "feed:board:{user_id}"


class AggregatedPinFeed(RedisAggregatedFeed):
    key_format = "feed:aggregated:{user_id}"


class PinNotificationFeed(RedisNotificationFeed):
    key_format = "feed:notification:{user_id}"


class PinManager(Manager):
    feed_classes = {"normal": PinFeed, "aggregated": AggregatedPinFeed}
    user_feed_class = PinFeed

    async def get_user_follower_ids(self, user_id: int | str) -> dict[FanoutPriority, list[int]]:
        return {FanoutPriority.HIGH: [1, 2, 3]}


async def app() -> None:
    noon = datetime(2024, 1, 1, 12, tzinfo=UTC)
    by_name = Activity(actor=13, verb="pin", object=1, time=noon)
    by_id = Activity(13, 5, 1, target=7, extra_context={"title": "Ramen"})
    by_instance = Activity(actor=13, verb=Pin(), object=1)
    pin = PinActivity(actor=13, verb=Pin, object=1, board_id=7)

    feed = PinFeed(13)
    added: int = await feed.add(by_name)
    await feed.add_many([by_id, by_instance])
    activities = await feed[:25]
    reveal_type(activities)
    reveal_type(await feed[0])
    older = feed.filter(activity_id__lt=activities[-1]).order_by("-activity_id")
    reveal_type(older)
    reveal_type(await older[:10])

    board = BoardFeed(1)
    await board.add(pin)
    pins = await BoardFeed(1)[:25]
    reveal_type(pins)
    first = await board[0]
    reveal_type(first)
    board_ids: list[int] = [p.board_id for p in pins] + [first.board_id]
    page = await board.page(limit=25)
    reveal_type(page)
    if page.next_cursor is not None:
        more: Page[PinActivity] = await board.page(limit=25, cursor=page.next_cursor)
    async for item in board:
        reveal_type(item)

    groups = await AggregatedPinFeed(13)[:10]
    reveal_type(groups)
    changed: list[AggregatedActivity] = await AggregatedPinFeed(13).add(by_name)
    counted: int = groups[0].actor_count + changed[0].activity_count

    notifications = PinNotificationFeed(13)
    items = await notifications[:10]
    reveal_type(items)
    reveal_type(await notifications.page())
    flags: tuple[bool, bool] = (items[0].is_seen, items[0].is_read)
    await notifications.mark_activity(items[0].aggregated_id, read=True)
    unseen: int = await notifications.count_unseen()
    async with notifications.subscribe() as updates:
        counts: Counts = await anext(updates)
        reveal_type(counts)
        total: int = counts["unseen_count"] + counts["unread_count"]
        await updates.aclose()

    eager = PinManager()
    await eager.add_user_activity(13, by_name)
    await eager.remove_user_activity(13, by_name)
    await eager.update_user_activities([by_name])
    await eager.follow_user(1, 13)
    feeds = eager.get_feeds(1)
    user_feed = eager.get_user_feed(13)
    queue: ArqRedis = await create_queue("redis://127.0.0.1:6379/0")
    queued = PinManager(queue=queue)
    queued.queue = None
    await queued.fanout(PinFeed, [1, 2], "add", [by_name])
    reveal_type(PinActivity.model_validate(pin.model_dump(mode="json")))
'''

EXPECTED = {
    "activities": "list[asyncfeeds.activity.Activity]",
    "await feed[0]": "asyncfeeds.activity.Activity",
    "older": "user_app.PinFeed",
    "await older[:10]": "list[asyncfeeds.activity.Activity]",
    "pins": "list[user_app.PinActivity]",
    "first": "user_app.PinActivity",
    "page": "asyncfeeds.pages.Page[user_app.PinActivity]",
    "item": "user_app.PinActivity",
    "groups": "list[asyncfeeds.activity.AggregatedActivity]",
    "items": "list[asyncfeeds.activity.NotificationActivity]",
    "await notifications.page()": "asyncfeeds.pages.Page[asyncfeeds.activity.NotificationActivity]",
    "counts": "TypedDict(asyncfeeds.types.Counts, {'unseen_count': int, 'unread_count': int})",
    "PinActivity.model_validate(pin.model_dump(mode=\"json\"))": "user_app.PinActivity",
}


def test_mypy_strict_sees_the_item_types_of_a_readme_style_app(tmp_path: Path) -> None:
    (tmp_path / "user_app.py").write_text(textwrap.dedent(USER_APP))
    # The editable install is an import hook mypy cannot follow, so mypy reads the package
    # from the source tree, as it reads an installed one: followed, its own errors silent
    # (``mypy --strict asyncfeeds`` checks those in make test).
    (tmp_path / "mypy.ini").write_text(
        "[mypy]\nstrict = True\n\n[mypy-asyncfeeds.*]\nfollow_imports = silent\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", "mypy.ini", "--no-incremental",
         "--cache-dir", str(tmp_path / "cache"), "--python-version", "3.11", "user_app.py"],
        cwd=tmp_path,
        env={"MYPYPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = result.stdout + result.stderr
    errors = [line for line in output.splitlines() if ": error:" in line]
    assert not errors, output
    revealed = dict(_revealed(output))
    expressions = [
        m.group(1)
        for line in USER_APP.splitlines()
        if (m := re.search(r"reveal_type\((.*)\)\s*$", line))
    ]
    assert len(revealed) == len(expressions) == len(EXPECTED), output
    for expression in expressions:
        assert revealed[expression] == EXPECTED[expression], (expression, output)


def _revealed(output: str) -> list[tuple[str, str]]:
    """``(expression, revealed type)`` pairs, matching each note to its source line."""
    source = textwrap.dedent(USER_APP).splitlines()
    pairs = []
    for line_number, revealed in re.findall(
        r'user_app\.py:(\d+): note: Revealed type is "(.*)"', output
    ):
        call = re.search(r"reveal_type\((.*)\)\s*$", source[int(line_number) - 1])
        assert call is not None, source[int(line_number) - 1]
        pairs.append((call.group(1), revealed))
    return pairs


def test_py_typed_ships_with_the_package() -> None:
    import asyncfeeds

    assert (Path(asyncfeeds.__file__).parent / "py.typed").is_file()
    assert 'asyncfeeds = ["py.typed"]' in (ROOT / "pyproject.toml").read_text()


class PinActivity(Activity):
    board_id: int


class BoardAggregated(AggregatedActivity):
    board_name: str = ""


class BoardNotification(NotificationActivity):
    board_name: str = ""


def test_the_generic_argument_sets_the_item_class() -> None:
    class BoardFeed(MemoryFeed[PinActivity]):
        key_format = "typing:board:{user_id}"

    class PlainFeed(MemoryFeed):
        key_format = "typing:plain:{user_id}"

    class OwnClass(RedisFeed[Activity]):
        key_format = "typing:own:{user_id}"
        activity_class = PinActivity

    class Groups(MemoryAggregatedFeed[BoardAggregated]):
        key_format = "typing:groups:{user_id}"

    class Notes(MemoryNotificationFeed[BoardNotification]):
        key_format = "typing:notes:{user_id}"

    class SubBoard(BoardFeed):
        key_format = "typing:sub:{user_id}"

    assert BoardFeed.activity_class is PinActivity
    assert SubBoard.activity_class is PinActivity
    assert PlainFeed.activity_class is Activity
    assert OwnClass.activity_class is PinActivity
    assert Groups.aggregated_activity_class is BoardAggregated
    assert Groups.activity_class is Activity
    assert Notes.aggregated_activity_class is BoardNotification
    assert MemoryFeed.activity_class is Activity


async def test_a_generic_feed_stores_and_returns_its_item_class(memory_backend) -> None:
    class BoardFeed(MemoryFeed[PinActivity]):
        key_format = "typing:stored:{user_id}"
        activity_key_prefix = "typing:activity"

    pin = PinActivity(actor=1, verb=5, object=2, board_id=7)
    await BoardFeed(1).add(pin)
    (stored,) = await BoardFeed(1)[:1]
    assert type(stored) is PinActivity and stored.board_id == 7
    with pytest.raises(TypeError, match="PinActivity"):
        await BoardFeed(1).add(Activity(actor=1, verb=5, object=3))
    await BoardFeed.flush()


def test_a_wrong_generic_argument_fails_when_the_class_is_defined() -> None:
    with pytest.raises(TypeError, match="must be a subclass of Activity, got BoardAggregated"):

        class Flat(MemoryFeed[BoardAggregated]):  # type: ignore[type-var]
            key_format = "typing:bad1:{user_id}"

    with pytest.raises(TypeError, match="must be a subclass of NotificationActivity"):

        class Notes(MemoryNotificationFeed[BoardAggregated]):  # type: ignore[type-var]
            key_format = "typing:bad2:{user_id}"

    with pytest.raises(TypeError, match="is not a subclass of its item type PinActivity"):

        class Clash(MemoryFeed[PinActivity]):
            key_format = "typing:bad3:{user_id}"
            activity_class = Activity
