"""Metrics hooks: called by the manager on publish, fanout, follow; exported to Prometheus."""

from __future__ import annotations

from typing import Any

from conftest import Backend, make_activity
from prometheus_client import CollectorRegistry

from asyncfeeds import FanoutPriority, Manager
from asyncfeeds.metrics import Metrics, PrometheusMetrics


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
