"""Stream Framework's README (the Pinterest example) and notification tutorial, ported.

The code below keeps Stream Framework's class names, attributes and calls; each
line that had to change carries an ``# SF:`` comment with what it was, and each
kind of change is a row of the README's "Coming from Stream Framework" table.
Test scaffolding only, not port changes: the storage base classes come from the
backend under test (memory or Redis) and are passed in under Stream Framework's
names, every key of a run gets a unique prefix so runs sharing the Redis never
meet, and a list of follows stands in for the Django ORM.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from helpers import Backend, backends
from helpers import Pin as PinVerb  # id 5, "pin", "pinned": the verb of SF's verbs docs
from statsd_testing import END, lines_of, statsd_server

from asyncfeeds import (
    Activity,
    BaseAggregator,
    FanoutPriority,
    Manager,
    MemoryFeed,
    RecentVerbAggregator,
    get_verb_by_id,
    register,
)
from asyncfeeds.metrics import StatsdMetrics, set_metrics
from asyncfeeds.verbs import Love as LoveVerb

on_memory_and_redis = pytest.mark.parametrize(
    "backend", backends("memory", "redis"), indirect=True
)
NOON = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def isolated(backend: Backend, base: type) -> Any:
    """``base`` with every key of its subclasses under a prefix unique to this test run."""
    prefix = f"sf{backend.run_id}:"

    class Isolated(base):  # type: ignore[valid-type, misc]
        activity_key_prefix = f"{prefix}activity"

        def __init_subclass__(cls, **kwargs: Any) -> None:
            if "key_format" in cls.__dict__:
                cls.key_format = prefix + cls.key_format
            super().__init_subclass__(**kwargs)
            backend.created.append(cls)  # flushed by the fixture

    return Isolated


# -- the README's Pinterest example ------------------------------------------------------


@dataclass
class Pin:
    """The example app's Pin model, reduced to the fields the activity uses."""

    id: int
    user_id: int
    influencer_id: int
    item_id: int
    created_at: datetime

    def create_activity(self) -> Activity:
        return create_activity(self)


@dataclass
class Follow:
    user_id: int
    target: int


FOLLOWS = [Follow(user_id=follower, target=13) for follower in (21, 22, 23)]


def create_activity(pin: Pin) -> Activity:
    activity = Activity(
        pin.user_id,
        PinVerb,
        pin.id,
        pin.influencer_id,
        time=pin.created_at,  # SF: make_naive(pin.created_at, pytz.utc); aware or naive both do
        extra_context=dict(item_id=pin.item_id),
    )
    return activity


def pinterest(RedisFeed: Any, RedisAggregatedFeed: Any) -> Any:
    """The example's feeds and manager, on the given storage classes."""

    class PinFeed(RedisFeed):  # type: ignore[misc, valid-type]
        key_format = "feed:normal:{user_id}"  # SF: 'feed:normal:%(user_id)s'

    class AggregatedPinFeed(RedisAggregatedFeed):  # type: ignore[misc, valid-type]
        aggregator_class = RecentVerbAggregator
        key_format = "feed:aggregated:{user_id}"  # SF: %(user_id)s

    # SF's README defines UserPinFeed above PinFeed, its base: a NameError there.
    class UserPinFeed(PinFeed):
        key_format = "feed:user:{user_id}"  # SF: %(user_id)s

    class PinManager(Manager):
        feed_classes = dict(
            normal=PinFeed,
            aggregated=AggregatedPinFeed,
        )
        user_feed_class = UserPinFeed

        async def add_pin(self, pin: Pin) -> None:  # SF: def
            activity = pin.create_activity()
            # into the pinner's own feed, then out to every follower's feeds
            await self.add_user_activity(pin.user_id, activity)  # SF: no await

        async def remove_pin(self, pin: Pin) -> None:  # SF: def
            activity = pin.create_activity()
            await self.remove_user_activity(pin.user_id, activity)  # SF: no await

        async def get_user_follower_ids(self, user_id: Any) -> Any:  # SF: def
            ids = [f.user_id for f in FOLLOWS if f.target == user_id]  # Follow.objects.filter
            return {FanoutPriority.HIGH: ids}

    return PinFeed, AggregatedPinFeed, UserPinFeed, PinManager


async def feed_view(manager: Any, user_id: int) -> list[Activity]:
    """The README's Django view, less the template: pins by the people the user follows."""
    feed = manager.get_feeds(user_id)["normal"]
    activities: list[Activity] = await feed[:25]  # SF: list(feed[:25])
    return activities


def pins_of_13() -> list[Pin]:
    return [
        Pin(id=n, user_id=13, influencer_id=7, item_id=100 + n,
            created_at=NOON + timedelta(minutes=n))
        for n in (1, 2, 3)
    ]


@on_memory_and_redis
async def test_pinterest_example(backend: Backend) -> None:
    _, _, UserPinFeed, PinManager = pinterest(
        isolated(backend, backend.flat), isolated(backend, backend.aggregated)
    )
    assert register(PinVerb) is PinVerb  # SF: from stream_framework.verbs import register
    assert get_verb_by_id(5) is PinVerb
    pins = pins_of_13()

    # writing to one feed
    activity = create_activity(pins[0])
    feed = UserPinFeed(13)
    await feed.add(activity)  # SF: feed.add(activity)
    assert await feed[:25] == [activity]
    assert (activity.actor_id, activity.object_id, activity.target_id) == (13, 1, 7)

    # the fanout
    manager = PinManager()
    for pin in pins:
        await manager.add_pin(pin)  # SF: manager.add_pin(pin)
    for follower in (21, 22, 23):
        activities = await feed_view(manager, follower)
        assert [a.object_id for a in activities] == [3, 2, 1]
        oldest = activities[-1]
        assert (oldest.actor_id, oldest.verb, oldest.target_id) == (13, PinVerb, 7)
        assert oldest.extra_context == {"item_id": 101}
        groups = await manager.get_feeds(follower)["aggregated"][:25]
        assert [(g.activity_count, g.actor_ids, g.verb) for g in groups] == [(3, [13], PinVerb)]
    assert await feed_view(manager, 99) == []  # follows nobody
    own = await manager.get_user_feed(13)[:25]
    assert [a.object_id for a in own] == [3, 2, 1]  # the direct add and the fanout: no duplicate

    await manager.remove_pin(pins[1])
    for follower in (21, 22, 23):
        assert [a.object_id for a in await feed_view(manager, follower)] == [3, 1]
        groups = await manager.get_feeds(follower)["aggregated"][:25]
        assert [g.activity_count for g in groups] == [2]


@on_memory_and_redis
async def test_adding_data_querying_and_feed_docs(backend: Backend) -> None:
    PinFeed, _, UserPinFeed, _ = pinterest(
        isolated(backend, backend.flat), isolated(backend, backend.aggregated)
    )
    feed = UserPinFeed(13)
    activity = Activity(
        actor=13,
        verb=1,  # the Follow verb, as shipped by both libraries
        object=1,
        target=1,
        time=datetime.utcnow(),  # naive: taken as UTC
    )
    await feed.add(activity)  # SF: feed.add(activity)
    await feed.add_many([activity])  # SF: feed.add_many([activity])
    assert await feed.count() == 1

    # the storage split of SF's feed docs: store the activity once, then reference it
    later = Activity(13, PinVerb, 2, time=activity.time + timedelta(seconds=1))
    await UserPinFeed.insert_activity(later)  # SF: feed.insert_activity(later)
    follower_feed = PinFeed(21)
    await follower_feed.add(later)  # SF: follower_feed.add(later)

    await feed.add_many([later, Activity(13, PinVerb, 3, time=later.time + timedelta(seconds=1))])
    newest_first = await feed[:10]  # SF: feed[:10]
    assert [a.object_id for a in newest_first] == [3, 2, 1]
    middle = newest_first[1]
    # SF's ids were ints; here they are strings, and an activity may stand in for its id
    assert [a.object_id for a in await feed.filter(activity_id__gte=middle)[:10]] == [3, 2]
    assert [a.object_id for a in await feed.filter(activity_id__lt=middle.activity_id)[:10]] == [1]
    assert [a.object_id for a in await feed.order_by("activity_id")[:10]] == [1, 2, 3]
    assert [a.object_id for a in await feed.order_by("-activity_id")[:10]] == [3, 2, 1]
    assert await follower_feed[:10] == [later]
    await feed.delete()
    assert await feed.count() == 0


# -- the notification tutorial -----------------------------------------------------------


# SF's tutorial uses MyAggregator in MyNotificationFeed before defining it: defined first here.
class MyAggregator(BaseAggregator):
    """One group per verb and day: "thierry, peter and 2 others loved your photo"."""

    def get_group(self, activity: Activity) -> str:
        verb = activity.verb.id
        date = activity.time.date()
        group = "%s-%s" % (verb, date)  # noqa: UP031
        return group


@dataclass
class Love:
    """What the tutorial's ``add_love`` reads from a love."""

    id: int
    user_id: int
    influencer_id: int
    entity_id: int
    created_at: datetime


def notifications(RedisNotificationFeed: Any) -> Any:
    class MyNotificationFeed(RedisNotificationFeed):  # type: ignore[misc, valid-type]
        # where the data goes
        key_format = "feed:notification:{user_id}"  # SF: 'feed:notification:%(user_id)s'
        # how the activities are grouped
        aggregator_class = MyAggregator

    class MyNotification:  # SF: (object)
        """Hides the notification feed behind one call per event."""

        async def add_love(self, love: Love) -> None:  # SF: def
            # The tutorial leaves user_id and self.entity_id undefined: the loved item's
            # owner (the influencer) is notified, and the entity comes with the love.
            feed = MyNotificationFeed(love.influencer_id)
            activity = Activity(
                love.user_id, LoveVerb, love.id, love.influencer_id,
                time=love.created_at, extra_context=dict(entity_id=love.entity_id)
            )
            await feed.add(activity)  # SF: feed.add(activity)

    return MyNotificationFeed, MyNotification


@on_memory_and_redis
async def test_notification_tutorial(backend: Backend) -> None:
    MyNotificationFeed, MyNotification = notifications(
        isolated(backend, backend.notification)
    )

    # step 3: add an activity by hand and read it back
    user_id, object_id, influencer_id = 13, 100, 7
    feed = MyNotificationFeed(influencer_id)
    activity = Activity(
        user_id, LoveVerb, object_id, influencer_id, time=NOON,
        extra_context=dict(entity_id=5)
    )
    await feed.add(activity)  # SF: feed.add(activity)
    first = await feed[:5]  # SF: print feed[:5]
    assert [(g.activity_count, g.is_seen, g.is_read) for g in first] == [(1, False, False)]

    # step 4: the same through the small manager class
    notifier = MyNotification()
    for n, lover in enumerate((14, 15, 16), start=1):
        await notifier.add_love(Love(id=100 + n, user_id=lover, influencer_id=7, entity_id=5,
                                     created_at=NOON + timedelta(minutes=n)))
    await notifier.add_love(Love(id=200, user_id=14, influencer_id=7, entity_id=6,
                                 created_at=NOON + timedelta(days=1)))
    groups = await feed[:5]
    assert [(g.group, g.activity_count, g.actor_count) for g in groups] == [
        (f"3-{(NOON + timedelta(days=1)).date()}", 1, 1),
        (f"3-{NOON.date()}", 4, 4),
    ]
    assert groups[1].other_actor_count == 2  # "16, 15 and 2 others loved ..."
    assert groups[1].actor_ids == [16, 15, 14, 13]
    assert (await feed.count_unseen(), await feed.count_unread()) == (2, 2)

    await feed.mark_all()  # SF: mark_all(seen=True, read=None): seen, read left alone
    assert (await feed.count_unseen(), await feed.count_unread()) == (0, 2)
    await feed.mark_activity(groups[0].aggregated_id, read=True)
    assert (await feed.count_unseen(), await feed.count_unread()) == (0, 1)
    assert [(g.is_seen, g.is_read) for g in await feed[:5]] == [(True, True), (True, False)]
    await feed.mark_all(read=True)
    assert await feed.count_unread() == 0
    assert await MyNotificationFeed(99)[:5] == []  # nobody loved anything of user 99


# -- the metrics docs ------------------------------------------------------------------------


@on_memory_and_redis
async def test_statsd_settings_port(backend: Backend) -> None:
    _, _, _, PinManager = pinterest(
        isolated(backend, backend.flat), isolated(backend, backend.aggregated)
    )
    async with statsd_server() as server:
        # SF: STREAM_METRIC_CLASS = 'stream_framework.metrics.statsd.StatsdMetrics'
        STREAM_METRICS_OPTIONS = {"host": "127.0.0.1", "port": server.port, "prefix": "stream"}
        statsd = StatsdMetrics(**STREAM_METRICS_OPTIONS)  # type: ignore[arg-type]
        set_metrics(statsd)
        try:
            await PinManager().add_pin(pins_of_13()[0])
        finally:
            set_metrics(None)
        statsd.send(END)
        lines = lines_of(await server.datagrams_until_end())
        statsd.close()
    assert "stream.UserPinFeed.writes:1|c" in lines
    assert "stream.PinFeed.fanout.add:3|c" in lines
    assert "stream.AggregatedPinFeed.fanout.add:3|c" in lines
    assert "stream.activities.published:1|c" in lines
    assert sum(line.startswith("stream.PinFeed.fanout_latency:") for line in lines) == 1


# -- names asyncfeeds replaced ---------------------------------------------------------------


def test_stream_framework_key_formats_are_refused_with_the_new_form() -> None:
    with pytest.raises(TypeError, match=r"'feed:normal:\{user_id\}'"):

        class PinFeed(MemoryFeed):
            key_format = "feed:normal:%(user_id)s"


async def test_replaced_names_raise_errors_naming_their_replacement(
    memory_backend: Backend,
) -> None:
    feed = memory_backend.feed("flat")(1)
    with pytest.raises(AttributeError, match=r"get_activity_slice.*feed\.get_slice"):
        feed.get_activity_slice(0, 5)
    with pytest.raises(AttributeError, match="get_timeline_storage"):
        feed.timeline_storage  # noqa: B018
    notification = memory_backend.feed("notification")(1)
    with pytest.raises(AttributeError, match="count_unseen"):
        notification.get_denormalized_count()
    with pytest.raises(AttributeError, match=r"subscribe\(\)"):
        notification.publish_count(3)
    aggregated = memory_backend.feed("aggregated")(1)
    with pytest.raises(AttributeError, match=r"add_many\(activities\)"):
        aggregated.add_many_aggregated([])

    class PinManager(Manager):
        pass

    manager = PinManager()
    with pytest.raises(AttributeError, match="update_user_activities"):
        manager.update_user_activity(None)
    with pytest.raises(AttributeError, match="follow_user"):
        manager.follow_feed(None, None)
    with pytest.raises(AttributeError, match="queue_names"):
        manager.priority_fanout_task  # noqa: B018

    with pytest.raises(TypeError, match="await"):
        list(feed)  # SF: iterating an unsliced feed raised TypeError as well

    # anything else is the usual AttributeError
    with pytest.raises(AttributeError, match="object has no attribute 'nope'"):
        feed.nope  # noqa: B018
    assert not hasattr(manager, "nope") and not hasattr(feed, "__setstate__")


async def test_aggregated_current_activities_is_refused_before_any_write(
    memory_backend: Backend,
) -> None:
    feed = memory_backend.feed("aggregated")(1)
    activity = Activity(1, PinVerb, 1, time=NOON)
    with pytest.raises(TypeError, match="merge_max_length"):
        await feed.add_many([activity], current_activities=[])  # type: ignore[arg-type]
    assert await feed.count() == 0


@on_memory_and_redis
async def test_trim_false_skips_trimming_on_every_feed_kind(backend: Backend) -> None:
    days = [Activity(1, PinVerb, n, time=NOON + timedelta(days=n)) for n in range(4)]
    for kind in ("flat", "aggregated", "notification"):
        feed = backend.feed(kind, max_length=2)(1)
        await feed.add_many(days[:3], trim=False)  # one group a day on aggregated kinds
        assert await feed.count() == 3, kind
        await feed.add_many(days[3:])
        assert await feed.count() == 2, kind

