"""Metrics hooks: feed reads and writes, the manager's publish, fanout, follow; the exporters."""

from __future__ import annotations

import re
from typing import Any

import pytest
from helpers import Backend, make_activity
from prometheus_client import CollectorRegistry
from statsd_testing import END, lines_of, statsd_server

from asyncfeeds import FanoutPriority, Feed, Manager
from asyncfeeds.metrics import (
    Metrics,
    ProcessMetrics,
    PrometheusMetrics,
    StatsdMetrics,
    get_metrics,
    process_metrics,
    set_metrics,
)


class Recording(Metrics):
    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def __getattribute__(self, name: str) -> Any:
        if name.startswith("on_"):
            return lambda *args: self.calls.append((name, args))
        return super().__getattribute__(name)

    def named(self, name: str) -> list[tuple[Any, ...]]:
        return [args for called, args in self.calls if called == name]


def manager_class(backend: Backend) -> type[Manager]:
    class Counted(Manager):
        feed_classes = {"flat": backend.feed("flat"), "aggregated": backend.feed("aggregated")}
        user_feed_class = backend.feed("flat")
        fanout_chunk_size = 10

        async def get_user_follower_ids(self, user_id: Any) -> Any:
            return {FanoutPriority.HIGH: range(100, 125), FanoutPriority.LOW: [200]}

    return Counted


def test_the_default_hooks_do_nothing() -> None:
    metrics = Metrics()
    assert isinstance(Manager.metrics, Metrics)
    assert metrics.on_fanout(Manager, "add", 3, 0.1) is None
    assert metrics.on_activity_published() is None
    assert metrics.on_jobs_enqueued("high", 1, 0) is None


async def test_manager_calls_the_hooks(memory_backend: Backend) -> None:
    recording = Recording()
    manager = manager_class(memory_backend)(metrics=recording)
    activity = make_activity(1, actor=1)
    await manager.add_user_activity(1, activity)
    assert recording.named("on_activity_published") == [(1,)]
    fanouts = recording.named("on_fanout")
    assert len(fanouts) == 2 * 4  # chunks of 10, 10, 5 (high) and 1 (low) for each class
    for feed_class in manager.feed_classes.values():
        assert sum(n for cls, op, n, _ in fanouts if cls is feed_class and op == "add") == 26
    assert all(duration >= 0 for *_, duration in fanouts)

    await manager.remove_user_activity(1, activity)
    assert recording.named("on_activity_removed") == [(1,)]
    await manager.update_user_activities([activity])
    assert recording.named("on_activity_updated") == [(1,)]
    await manager.batch_import(2, [make_activity(n, actor=2) for n in range(3)], fanout=False)
    assert recording.named("on_activity_published")[-1] == (3,)
    await manager.follow_user(5, 2)
    await manager.unfollow_many_users(5, [2, 3])
    assert recording.named("on_follow") == [(1,)]
    assert recording.named("on_unfollow") == [(2,)]


async def test_prometheus_exporter_counts_the_hooks(memory_backend: Backend) -> None:
    registry = CollectorRegistry()
    metrics = PrometheusMetrics(registry=registry)
    manager = manager_class(memory_backend)(metrics=metrics)
    await manager.add_user_activity(1, make_activity(2, actor=1))
    await manager.follow_user(7, 1)

    flat = manager.feed_classes["flat"].__name__
    labels = {"feed_class": flat, "operation": "add"}
    assert registry.get_sample_value("asyncfeeds_activities_published_total") == 1
    assert registry.get_sample_value("asyncfeeds_fanout_feeds_total", labels) == 27
    assert registry.get_sample_value("asyncfeeds_fanout_chunk_seconds_count", labels) == 5
    assert registry.get_sample_value("asyncfeeds_follows_total") == 1

    metrics.on_jobs_enqueued("high", 4, 2)
    metrics.on_job_retry(Manager, "remove", 1)
    assert registry.get_sample_value(
        "asyncfeeds_fanout_jobs_enqueued_total", {"priority": "high"}) == 4
    assert registry.get_sample_value(
        "asyncfeeds_fanout_jobs_duplicate_total", {"priority": "high"}) == 2
    assert registry.get_sample_value(
        "asyncfeeds_fanout_job_retries_total", {"feed_class": "Manager", "operation": "remove"}
    ) == 1


# -- feed reads and writes ----------------------------------------------------------


def feed_events(recording: Recording) -> list[tuple[str, type, str, int]]:
    """The feed hooks called, without their durations (checked separately)."""
    return [
        (name, args[0], args[1], args[2])
        for name, args in recording.calls
        if name in ("on_feed_read", "on_feed_write")
    ]


async def test_flat_feed_reads_and_writes_are_reported_once_each(memory_backend: Backend) -> None:
    recording = Recording()
    flat = memory_backend.feed("flat", metrics=recording)
    feed = flat(1)
    activities = [make_activity(n, actor=1) for n in range(3)]
    assert await feed.add_many(a for a in activities) == 3  # a generator is counted and written
    assert await feed.add(activities[0]) == 0  # add goes through add_many: one report
    assert await feed.remove(activities[1]) == 1
    assert len(await feed[:10]) == 2
    assert await feed[0] == activities[2]
    assert feed_events(recording) == [
        ("on_feed_write", flat, "add", 3),
        ("on_feed_write", flat, "add", 1),
        ("on_feed_write", flat, "remove", 1),
        ("on_feed_read", flat, "slice", 2),
        ("on_feed_read", flat, "slice", 1),
    ]
    assert all(args[3] >= 0 for _, args in recording.calls)


async def test_failed_calls_are_not_reported(memory_backend: Backend) -> None:
    recording = Recording()
    feed = memory_backend.feed("flat", metrics=recording)(1)
    with pytest.raises(TypeError):
        await feed.add_many(["not an activity"])  # type: ignore[list-item]
    assert feed_events(recording) == []


async def test_aggregated_and_notification_feeds_report_one_event_per_call(
    memory_backend: Backend,
) -> None:
    recording = Recording()
    aggregated = memory_backend.feed("aggregated", metrics=recording)
    notification = memory_backend.feed("notification", metrics=recording)
    activities = [make_activity(n, actor=n, object=1) for n in range(4)]
    assert len(await aggregated(1).add_many(activities)) == 1
    assert await aggregated(1).contains(activities[0])  # an index lookup, not a slice read
    assert await aggregated(1).remove_many(activities[:2]) == 2
    await notification(1).add_many(activities, trim=True)
    groups = await notification(1)[:5]  # NotificationFeed.get_slice calls AggregatedFeed's
    assert [g.activity_count for g in groups] == [4]
    assert feed_events(recording) == [
        ("on_feed_write", aggregated, "add", 4),
        ("on_feed_write", aggregated, "remove", 2),
        ("on_feed_write", notification, "add", 4),
        ("on_feed_read", notification, "slice", 1),
    ]


async def test_a_failing_hook_never_fails_the_feed_call(
    memory_backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken(Metrics):
        def on_feed_write(self, *args: Any) -> None:
            raise RuntimeError("exporter down")

    feed = memory_backend.feed("flat", metrics=Broken())(1)
    activity = make_activity(1)
    assert await feed.add(activity) == 1
    assert await feed.contains(activity)
    assert "metrics hook of Broken failed" in caplog.text


async def test_set_metrics_reaches_every_feed_and_manager(memory_backend: Backend) -> None:
    recording = Recording()
    manager = manager_class(memory_backend)()  # no metrics of its own: the process-wide ones
    assert get_metrics() is not recording
    set_metrics(recording)
    try:
        assert get_metrics() is recording
        await manager.add_user_activity(1, make_activity(3, actor=1))
        await manager.get_user_feed(1)[:5]
    finally:
        set_metrics(None)
    user_feed = manager.user_feed_class
    assert ("on_feed_write", user_feed, "add", 1) in feed_events(recording)
    assert ("on_feed_read", user_feed, "slice", 1) in feed_events(recording)
    assert recording.named("on_activity_published") == [(1,)]
    assert len(recording.named("on_fanout")) == 8
    await manager.add_user_activity(1, make_activity(4, actor=1))
    assert len(recording.named("on_activity_published")) == 1  # uninstalled: nothing more
    with pytest.raises(TypeError, match="Metrics instance"):
        set_metrics("statsd")  # type: ignore[arg-type]


def test_the_process_wide_forwarder_forwards_every_hook() -> None:
    hooks = {name for name in vars(Metrics) if name.startswith("on_")}
    assert hooks == {name for name in vars(ProcessMetrics) if name.startswith("on_")}
    assert Feed.metrics is process_metrics and Manager.metrics is process_metrics


async def test_prometheus_exporter_counts_feed_reads_and_writes(memory_backend: Backend) -> None:
    registry = CollectorRegistry()
    flat = memory_backend.feed("flat", metrics=PrometheusMetrics(registry=registry))
    await flat(1).add_many([make_activity(n) for n in range(2)])
    await flat(1).remove(make_activity(0))
    await flat(1)[:10]
    name = flat.__name__

    def sample(metric: str, operation: str) -> float | None:
        labels = {"feed_class": name, "operation": operation}
        return registry.get_sample_value(f"asyncfeeds_{metric}", labels)

    assert sample("feed_writes_total", "add") == 2
    assert sample("feed_writes_total", "remove") == 1
    assert sample("feed_write_seconds_count", "add") == 1
    assert sample("feed_reads_total", "slice") == 1
    assert sample("feed_read_seconds_count", "slice") == 1
    assert sample("feed_read_seconds_sum", "slice") is not None


# -- StatsD ---------------------------------------------------------------------------

LINE = re.compile(r"^[A-Za-z0-9_.\-]+:\d+(\.\d{3})?\|(c|ms)$")


async def test_statsd_exporter_sends_standard_lines_to_a_udp_server(
    memory_backend: Backend,
) -> None:
    async with statsd_server() as server:
        statsd = StatsdMetrics("127.0.0.1", server.port, prefix="shop")
        manager = manager_class(memory_backend)()
        set_metrics(statsd)
        try:
            await manager.add_user_activity(1, make_activity(5, actor=1))
            await manager.get_user_feed(1)[:5]
        finally:
            set_metrics(None)
        statsd.on_follow(3)
        statsd.on_jobs_enqueued("high", 4, 2)
        statsd.on_job_retry(manager.feed_classes["flat"], "remove", 2)
        statsd.send(END)
        datagrams = await server.datagrams_until_end()
        statsd.close()

    lines = lines_of(datagrams)
    assert all(LINE.match(line) for line in lines), lines
    user_feed = manager.user_feed_class.__name__
    flat = manager.feed_classes["flat"].__name__
    assert f"shop.{user_feed}.writes:1|c" in lines
    assert any(line.startswith(f"shop.{user_feed}.write_latency:") for line in lines)
    assert "shop.activities.published:1|c" in lines
    fanouts = sorted(line for line in lines if line.startswith(f"shop.{flat}.fanout.add:"))
    assert fanouts == sorted(f"shop.{flat}.fanout.add:{n}|c" for n in (10, 10, 5, 1))
    assert sum(line.startswith(f"shop.{flat}.fanout_latency:") for line in lines) == 4
    reads = [d.split("\n") for d in datagrams if d.startswith(f"shop.{user_feed}.reads:")]
    assert len(reads) == 1 and reads[0][0] == f"shop.{user_feed}.reads:1|c"
    assert reads[0][1].startswith(f"shop.{user_feed}.read_latency:")
    assert "shop.follows:3|c" in lines
    assert "shop.fanout.jobs.high.enqueued:4|c\nshop.fanout.jobs.high.duplicate:2|c" in datagrams
    assert f"shop.{flat}.fanout.remove.retries:1|c" in lines


async def test_statsd_names_are_made_safe_and_sends_after_close_are_dropped() -> None:
    async with statsd_server() as server:
        statsd = StatsdMetrics("127.0.0.1", server.port, prefix=None)
        odd = type("Odd:Name|x@y", (), {})
        statsd.on_feed_write(odd, "add", 2, 0.0015)
        statsd.on_feed_write(odd, "remove", 1, 0.0)
        statsd.send(END)
        assert await server.datagrams_until_end() == [
            "Odd_Name_x_y.writes:2|c\nOdd_Name_x_y.write_latency:1.500|ms",
            "Odd_Name_x_y.deletes:1|c\nOdd_Name_x_y.delete_latency:0.000|ms",
        ]
        statsd.close()
        statsd.on_follow()
        assert statsd.dropped == 1
    with pytest.raises(ValueError, match="65535"):
        StatsdMetrics("127.0.0.1", 70000)


def test_prometheus_exporter_counts_dead_and_refused_jobs_and_gauges_queues() -> None:
    registry = CollectorRegistry()
    metrics = PrometheusMetrics(registry=registry)
    assert Metrics().on_job_dead(Manager, "add", 5) is None
    metrics.on_job_dead(Manager, "add", 5)
    metrics.on_job_refused("low", "foreign_manager")
    metrics.on_queue_status("high", queued=7, in_progress=2, retrying=1, dead=3, oldest_age=4.5)
    metrics.on_queue_status("high", queued=0, in_progress=2, retrying=1, dead=3, oldest_age=0.0)
    assert registry.get_sample_value(
        "asyncfeeds_fanout_jobs_dead_total", {"feed_class": "Manager", "operation": "add"}) == 1
    assert registry.get_sample_value(
        "asyncfeeds_fanout_jobs_refused_total", {"priority": "low", "reason": "foreign_manager"}
    ) == 1
    gauge = "asyncfeeds_fanout_queue_jobs"
    assert registry.get_sample_value(gauge, {"priority": "high", "state": "queued"}) == 0
    assert registry.get_sample_value(gauge, {"priority": "high", "state": "dead"}) == 3
    assert registry.get_sample_value(
        "asyncfeeds_fanout_queue_oldest_job_seconds", {"priority": "high"}) == 0
