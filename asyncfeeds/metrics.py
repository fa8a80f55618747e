"""Metrics hooks the fanout manager calls, and a Prometheus exporter for them.

``Metrics`` does nothing: subclass it to send the numbers anywhere, or use
``PrometheusMetrics`` (``pip install asyncfeeds[prometheus]``) and pass it as
``Manager(metrics=...)`` or set it as the manager class's ``metrics``.
"""

from __future__ import annotations

from typing import Any


class Metrics:
    """The hooks; every method is a no-op so a subclass overrides only what it needs."""

    def on_activity_published(self, count: int = 1) -> None:
        """``count`` activities were published (added or batch imported) by a user."""

    def on_activity_removed(self, count: int = 1) -> None:
        """``count`` activities were removed by their user."""

    def on_activity_updated(self, count: int = 1) -> None:
        """``count`` activities had their stored data replaced."""

    def on_fanout(
        self, feed_class: type[Any], operation: str, feed_count: int, duration: float
    ) -> None:
        """One fanout chunk wrote ``feed_count`` feeds of ``feed_class`` in ``duration`` seconds."""

    def on_follow(self, count: int = 1) -> None:
        """A user followed ``count`` users."""

    def on_unfollow(self, count: int = 1) -> None:
        """A user unfollowed ``count`` users."""

    def on_jobs_enqueued(self, priority: str, enqueued: int, duplicates: int) -> None:
        """Fanout jobs went to a priority queue; ``duplicates`` were already queued or running."""

    def on_job_retry(self, feed_class: type[Any], operation: str, attempt: int) -> None:
        """A fanout job failed on try ``attempt`` and will be retried."""

    def on_job_dead(self, feed_class: type[Any], operation: str, tries: int) -> None:
        """A fanout job failed its last of ``tries`` tries and was kept as a dead letter."""

    def on_job_refused(self, priority: str, reason: str) -> None:
        """A worker refused a job without running it (and kept it as a dead letter).

        ``reason`` is ``"foreign_manager"`` (the payload names another manager's
        import path) or ``"bad_payload"`` (it cannot be decoded for this manager).
        """

    def on_queue_status(
        self,
        priority: str,
        *,
        queued: int,
        in_progress: int,
        retrying: int,
        dead: int,
        oldest_age: float,
    ) -> None:
        """Gauges of one priority queue: jobs waiting for their first try, running, waiting
        for another try, dead letters, and the age in seconds of the oldest job due."""


class PrometheusMetrics(Metrics):
    """Counts and times the hooks with prometheus-client, under ``<namespace>_...`` names."""

    def __init__(self, registry: Any = None, namespace: str = "asyncfeeds") -> None:
        try:
            import prometheus_client as prometheus
        except ImportError as exc:
            raise ImportError(
                "PrometheusMetrics needs prometheus-client: pip install 'asyncfeeds[prometheus]'"
            ) from exc
        self.registry = prometheus.REGISTRY if registry is None else registry
        options = {"namespace": namespace, "registry": self.registry}
        self.published = prometheus.Counter(
            "activities_published", "Activities published by users", **options
        )
        self.removed = prometheus.Counter(
            "activities_removed", "Activities removed by users", **options
        )
        self.updated = prometheus.Counter(
            "activities_updated", "Activities whose stored data was replaced", **options
        )
        labels = ("feed_class", "operation")
        self.fanout_feeds = prometheus.Counter(
            "fanout_feeds", "Follower feeds written by fanout", labels, **options
        )
        self.fanout_seconds = prometheus.Histogram(
            "fanout_chunk_seconds", "Time to write one fanout chunk", labels, **options
        )
        self.follows = prometheus.Counter("follows", "Users followed", **options)
        self.unfollows = prometheus.Counter("unfollows", "Users unfollowed", **options)
        self.jobs_enqueued = prometheus.Counter(
            "fanout_jobs_enqueued", "Fanout jobs enqueued", ("priority",), **options
        )
        self.jobs_duplicate = prometheus.Counter(
            "fanout_jobs_duplicate", "Fanout jobs not enqueued: already queued or running",
            ("priority",), **options,
        )
        self.job_retries = prometheus.Counter(
            "fanout_job_retries", "Fanout jobs that failed and will be retried", labels, **options
        )
        self.jobs_dead = prometheus.Counter(
            "fanout_jobs_dead", "Fanout jobs kept as dead letters after their last try",
            labels, **options,
        )
        self.jobs_refused = prometheus.Counter(
            "fanout_jobs_refused", "Fanout jobs a worker refused to run", ("priority", "reason"),
            **options,
        )
        self.queue_jobs = prometheus.Gauge(
            "fanout_queue_jobs", "Fanout jobs by queue and state (queued, in_progress, "
            "retrying, dead)", ("priority", "state"), **options,
        )
        self.queue_oldest = prometheus.Gauge(
            "fanout_queue_oldest_job_seconds", "Age of the oldest fanout job due on the queue",
            ("priority",), **options,
        )

    def on_activity_published(self, count: int = 1) -> None:
        self.published.inc(count)

    def on_activity_removed(self, count: int = 1) -> None:
        self.removed.inc(count)

    def on_activity_updated(self, count: int = 1) -> None:
        self.updated.inc(count)

    def on_fanout(
        self, feed_class: type[Any], operation: str, feed_count: int, duration: float
    ) -> None:
        self.fanout_feeds.labels(feed_class.__name__, operation).inc(feed_count)
        self.fanout_seconds.labels(feed_class.__name__, operation).observe(duration)

    def on_follow(self, count: int = 1) -> None:
        self.follows.inc(count)

    def on_unfollow(self, count: int = 1) -> None:
        self.unfollows.inc(count)

    def on_jobs_enqueued(self, priority: str, enqueued: int, duplicates: int) -> None:
        self.jobs_enqueued.labels(priority).inc(enqueued)
        self.jobs_duplicate.labels(priority).inc(duplicates)

    def on_job_retry(self, feed_class: type[Any], operation: str, attempt: int) -> None:
        self.job_retries.labels(feed_class.__name__, operation).inc()

    def on_job_dead(self, feed_class: type[Any], operation: str, tries: int) -> None:
        self.jobs_dead.labels(feed_class.__name__, operation).inc()

    def on_job_refused(self, priority: str, reason: str) -> None:
        self.jobs_refused.labels(priority, reason).inc()

    def on_queue_status(
        self,
        priority: str,
        *,
        queued: int,
        in_progress: int,
        retrying: int,
        dead: int,
        oldest_age: float,
    ) -> None:
        states = {"queued": queued, "in_progress": in_progress, "retrying": retrying,
                  "dead": dead}
        for state, value in states.items():
            self.queue_jobs.labels(priority, state).set(value)
        self.queue_oldest.labels(priority).set(oldest_age)

    def serve(self, port: int, addr: str = "127.0.0.1") -> None:
        """Expose the metrics over HTTP for Prometheus to scrape (one port per process)."""
        import prometheus_client as prometheus

        prometheus.start_http_server(port, addr=addr, registry=self.registry)


__all__ = ["Metrics", "PrometheusMetrics"]
