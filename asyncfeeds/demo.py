"""The ``asyncfeeds demo`` scenario: a small Pinterest-like world, fanned out and printed.

Users follow each other, pin to boards and like pins. Every pin is fanned out
to the author's followers (a flat and an aggregated feed each), likes and
follows land in notification feeds, and one user's three feeds are printed.
The same code runs on every backend: only the feed base classes change.
"""

from __future__ import annotations

import random
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TextIO

import asyncfeeds

from .activity import Activity, AggregatedActivity, NotificationActivity, utcnow
from .fanout.manager import FanoutPriority, Manager, Progress
from .progress import ProgressBar
from .verbs import Follow, Verb, register_verb

BACKENDS = ("memory", "redis", "cassandra")
_FAMILIES = {"memory": "Memory", "redis": "Redis", "cassandra": "Cassandra"}
_NAMES = (
    "alice",
    "bob",
    "carol",
    "dave",
    "erin",
    "frank",
    "grace",
    "heidi",
    "ivan",
    "judy",
    "mallory",
    "niaj",
    "olivia",
    "peggy",
    "rupert",
    "sybil",
    "trent",
    "victor",
    "walter",
    "wendy",
)
_BOARDS = {
    "Cooking": ("Ramen", "Shakshuka", "Sourdough", "Tacos al pastor", "Pho", "Kimchi", "Risotto"),
    "Travel": ("Kyoto", "Lisbon", "Patagonia", "Oaxaca", "Tbilisi", "Hokkaido", "Porto"),
    "Design": ("Bauhaus chair", "Risograph poster", "Tiny house", "Brutalist lamp", "Kilim rug"),
    "Gardening": ("Tomato trellis", "Herb spiral", "Bonsai", "Rain garden", "Dahlias"),
}
FLAT_SHOWN = 8
GROUPS_SHOWN = 5
NOTIFICATIONS_SHOWN = 6


class Pin(Verb):
    """A user pinned something to a board."""

    id = 5
    infinitive = "pin"
    past_tense = "pinned"


class Like(Verb):
    """A user liked a pin."""

    id = 6
    infinitive = "like"
    past_tense = "liked"


register_verb(Pin)
register_verb(Like)


class DemoError(Exception):
    """The demo cannot run as asked (say, a backend this installation lacks)."""


# -- the world ---------------------------------------------------------------------------
@dataclass
class World:
    """Who is who, who follows whom, and what everyone pinned and liked."""

    now: datetime
    names: dict[int, str]
    following: dict[int, set[int]]
    pins: list[Activity] = field(default_factory=list)
    likes: list[Activity] = field(default_factory=list)
    follows: list[Activity] = field(default_factory=list)
    _followers: dict[int, list[int]] | None = field(default=None, repr=False)

    @property
    def viewer(self) -> int:
        """The user whose feeds the demo prints."""
        return 1

    def followers(self, user_id: int) -> list[int]:
        """Everyone who follows ``user_id``, in id order."""
        if self._followers is None:
            index: dict[int, list[int]] = defaultdict(list)
            for user, followed in sorted(self.following.items()):
                for target in followed:
                    index[target].append(user)
            self._followers = index
        return self._followers.get(user_id, [])

    def name(self, user_id: Any) -> str:
        return self.names.get(user_id, f"user {user_id}")


def build_world(users: int, now: datetime | None = None, seed: int = 7) -> World:
    """A deterministic world of ``users`` users (at least 3) around ``now``."""
    if users < 3:
        raise DemoError("the demo needs at least 3 users")
    now = now or utcnow()
    rng = random.Random(seed)
    ids = list(range(1, users + 1))
    names = {u: _NAMES[u - 1] if u <= len(_NAMES) else f"user{u}" for u in ids}
    following: dict[int, set[int]] = {u: set() for u in ids}
    for u in ids:
        others = [o for o in ids if o != u]
        following[u].update(rng.sample(others, min(len(others), 6)))
    # alice follows her friends, and they follow her back: her feeds are never empty.
    for friend in ids[1:5]:
        following[1].add(friend)
        following[friend].add(1)
    world = World(now=now, names=names, following=following)

    def minutes_ago(minutes: float) -> datetime:
        return now - timedelta(minutes=minutes)

    boards = list(_BOARDS)
    object_ids = iter(range(1000, 10**9))
    for u in ids:
        for n in range(3):
            board = "Cooking" if (u, n) == (1, 0) else rng.choice(boards)
            title = "Ramen" if (u, n) == (1, 0) else rng.choice(_BOARDS[board])
            age = 40 if (u, n) == (1, 0) else rng.uniform(1, 60 * 50)
            world.pins.append(
                Activity(
                    actor=u,
                    verb=Pin,
                    object=next(object_ids),
                    target=boards.index(board),
                    time=minutes_ago(age),
                    extra_context={"title": title, "board": board},
                )
            )
    world.pins.sort(key=lambda a: a.activity_id)
    for pin in world.pins:
        age = (now - pin.time).total_seconds() / 60
        followers = world.followers(int(pin.actor))
        likes = {f: age * rng.random() for f in followers if rng.random() < 0.35}
        if pin.actor == 1 and pin.extra_context["title"] == "Ramen":
            likes = {4: 12, 3: 5}  # "carol and dave liked your pin 'Ramen'"
        for liker, liked_ago in likes.items():
            world.likes.append(
                Activity(
                    actor=liker,
                    verb=Like,
                    object=pin.object,
                    time=minutes_ago(liked_ago),
                    extra_context={"title": pin.extra_context["title"]},
                )
            )
    for follower in world.followers(1):
        world.follows.append(
            Activity(
                actor=follower, verb=Follow, object=1, time=minutes_ago(rng.uniform(60, 60 * 30))
            )
        )
    return world


# -- the feeds ---------------------------------------------------------------------------
@dataclass(frozen=True)
class DemoFeeds:
    """The demo's feed classes, bound to one backend."""

    user: type[Any]
    flat: type[Any]
    aggregated: type[Any]
    notification: type[Any]

    def all(self) -> tuple[type[Any], ...]:
        return (self.user, self.flat, self.aggregated, self.notification)


def feed_classes(backend: str) -> DemoFeeds:
    """Build the demo feed classes on the ``backend`` family (memory, redis, cassandra)."""
    if backend not in _FAMILIES:
        raise DemoError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    family = _FAMILIES[backend]
    try:
        flat, aggregated, notification = (
            getattr(asyncfeeds, f"{family}{kind}")
            for kind in ("Feed", "AggregatedFeed", "NotificationFeed")
        )
    except (AttributeError, ImportError) as error:
        raise DemoError(f"the {backend} backend is not available here: {error}") from None
    shared = {"activity_key_prefix": "demo:activity"}
    return DemoFeeds(
        user=type("DemoUserFeed", (flat,), {**shared, "key_format": "demo:user:{user_id}"}),
        flat=type("DemoFlatFeed", (flat,), {**shared, "key_format": "demo:flat:{user_id}"}),
        aggregated=type(
            "DemoAggregatedFeed",
            (aggregated,),
            {**shared, "key_format": "demo:aggregated:{user_id}"},
        ),
        notification=type(
            "DemoNotificationFeed",
            (notification,),
            {**shared, "key_format": "demo:notification:{user_id}"},
        ),
    )


# -- fanout ------------------------------------------------------------------------------
class DemoManager(Manager):
    """Fans pins out to followers (eagerly)."""

    def __init__(self, world: World) -> None:
        super().__init__()
        self.world = world

    async def get_user_follower_ids(self, user_id: Any) -> dict[FanoutPriority, list[int]]:
        """The first half of the followers (say, the recently active) go first."""
        ids = self.world.followers(user_id)
        half = len(ids) // 2
        return {FanoutPriority.HIGH: ids[:half], FanoutPriority.LOW: ids[half:]}


def build_manager(feeds: DemoFeeds, world: World, chunk_size: int) -> DemoManager:
    """An eager ``DemoManager`` writing to ``feeds``."""
    manager_class: type[DemoManager] = type(
        "DemoManager",
        (DemoManager,),
        {
            "__module__": __name__,
            "feed_classes": {"flat": feeds.flat, "aggregated": feeds.aggregated},
            "user_feed_class": feeds.user,
            "fanout_chunk_size": chunk_size,
        },
    )
    return manager_class(world)


async def publish(world: World, feeds: DemoFeeds, chunk_size: int, progress: Progress) -> None:
    """Publish every pin through the manager: stored once, its author's feed, then fanout;
    ``progress`` is told of every chunk of follower feeds written."""
    manager = build_manager(feeds, world, chunk_size)
    for pin in world.pins:
        await manager.add_user_activity(pin.actor, pin, progress=progress)


async def notify(world: World, feeds: DemoFeeds) -> None:
    """Likes go to the pin's author, follows to the followed user."""
    authors = {pin.object: pin.actor for pin in world.pins}
    inbox: dict[Any, list[Activity]] = defaultdict(list)
    for like in world.likes:
        inbox[authors[like.object]].append(like)
    for follow in world.follows:
        inbox[follow.object].append(follow)
    for user_id, activities in inbox.items():
        await feeds.notification(user_id).add_many(activities)


# -- rendering ---------------------------------------------------------------------------
def ago(when: datetime, now: datetime) -> str:
    """A short relative time: "just now", "5 min ago", "3 h ago", "yesterday", "4 days ago"."""
    seconds = max((now - when).total_seconds(), 0)
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 86400:
        return f"{int(seconds // 3600)} h ago"
    days = int(seconds // 86400)
    return "yesterday" if days == 1 else f"{days} days ago"


def day_label(when: datetime, now: datetime) -> str:
    """The calendar day of ``when`` (UTC) as "today", "yesterday" or "on Mon 3 Jun"."""
    days = (now.date() - when.date()).days
    if days == 0:
        return "today"
    if days == 1:
        return "yesterday"
    return f"on {when:%a} {when.day} {when:%b}"


def people(names: Sequence[str], others: int) -> str:
    """ "bob", "bob and carol", "bob, carol and 3 others"."""
    if others > 0:
        return f"{', '.join(names)} and {others} other{'s' if others != 1 else ''}"
    if len(names) > 1:
        return f"{', '.join(names[:-1])} and {names[-1]}"
    return names[0] if names else "someone"


def describe_activity(activity: Activity, world: World) -> str:
    """One flat-feed line: "bob pinned 'Ramen' to Cooking · 2 min ago"."""
    extra = activity.extra_context
    what = f"'{extra.get('title', activity.object)}'"
    if "board" in extra:
        what += f" to {extra['board']}"
    return (
        f"{world.name(activity.actor)} {activity.verb.past_tense} {what}"
        f" · {ago(activity.time, world.now)}"
    )


def _actors(group: AggregatedActivity, world: World) -> str:
    shown = [world.name(a) for a in group.actor_ids[:2]]
    return people(shown, group.other_actor_count)


def describe_group(group: AggregatedActivity, world: World) -> str:
    """One aggregated-feed line: "bob, carol and 3 others pinned 7 pins today: 'Pho', ..."."""
    verb = group.verb
    count = group.activity_count
    day = day_label(group.updated_at or world.now, world.now)
    if count == 1 and group.last_activity is not None:
        line = describe_activity(group.last_activity, world).rsplit(" · ", 1)[0]
        return f"{line} {day}"
    noun = verb.infinitive if verb else "activity"
    titles = [f"'{a.extra_context.get('title', a.object)}'" for a in group.last_activities[:3]]
    more = ", ..." if count > len(titles) else ""
    return (
        f"{_actors(group, world)} {verb.past_tense if verb else 'did'} {count} "
        f"{noun}{'s' if count != 1 else ''} {day}: "
        f"{', '.join(titles)}{more}"
    )


def describe_notification(group: NotificationActivity, world: World) -> str:
    """One notification line: "(unread) carol and dave liked your pin 'Ramen' · 5 min ago"."""
    state = "(unread) " if not group.is_read else "         "
    last = group.last_activity
    when = ago(last.time, world.now) if last else ""
    if group.verb is Follow:
        what = "started following you"
    else:
        title = last.extra_context.get("title", last.object) if last else "?"
        verb = group.verb.past_tense if group.verb else "did something with"
        what = f"{verb} your pin '{title}'"
    return f"{state}{_actors(group, world)} {what} · {when}"


def _heading(out: TextIO, text: str) -> None:
    out.write(f"\n{text}\n{'-' * len(text)}\n")


async def show_feeds(world: World, feeds: DemoFeeds, out: TextIO) -> None:
    """Print the viewer's flat, aggregated and notification feeds."""
    viewer = world.viewer
    name = world.name(viewer)
    flat = feeds.flat(viewer)
    _heading(out, f"{name}'s flat feed ({await flat.count()} pins from people she follows)")
    for activity in await flat[:FLAT_SHOWN]:
        out.write(f"  {describe_activity(activity, world)}\n")

    aggregated = feeds.aggregated(viewer)
    _heading(out, f"{name}'s aggregated feed ({await aggregated.count()} groups)")
    for group in await aggregated[:GROUPS_SHOWN]:
        out.write(f"  {describe_group(group, world)}\n")

    notifications = feeds.notification(viewer)
    unseen, unread = await notifications.count_unseen(), await notifications.count_unread()
    _heading(out, f"{name}'s notification feed ({unseen} unseen, {unread} unread)")
    groups = await notifications[:NOTIFICATIONS_SHOWN]
    for group in groups:
        out.write(f"  {describe_notification(group, world)}\n")
    if groups:
        await notifications.mark_all(seen=True)
        await notifications.mark_activity(groups[0].aggregated_id, read=True)
        out.write(
            f"\n  {name} opens her notifications and reads the newest one: "
            f"{await notifications.count_unseen()} unseen, "
            f"{await notifications.count_unread()} unread\n"
        )


async def run_demo(
    backend: str = "memory",
    users: int = 30,
    out: TextIO = sys.stdout,
    progress: TextIO | None = sys.stderr,
    chunk_size: int = 25,
) -> World:
    """Build the world on ``backend``, fan it out with a progress bar and print the feeds."""
    feeds = feed_classes(backend)
    world = build_world(users)
    started = time.perf_counter()
    try:
        await asyncfeeds.setup(*feeds.all())
        for feed_class in feeds.all():
            await feed_class.flush()
        out.write(
            f"asyncfeeds demo on the {backend} backend: {users} users, "
            f"{sum(len(f) for f in world.following.values())} follows, {len(world.pins)} pins, "
            f"{len(world.likes)} likes\n"
        )
        out.flush()
        total = sum(len(world.followers(int(p.actor))) for p in world.pins) * 2
        with ProgressBar(total, desc="fanout", unit=" feeds", file=progress) as bar:
            await publish(world, feeds, chunk_size, bar.update)
        await notify(world, feeds)
        await show_feeds(world, feeds, out)
    finally:
        await asyncfeeds.aclose()
    out.write(f"\ndone in {time.perf_counter() - started:.1f} s\n")
    return world
