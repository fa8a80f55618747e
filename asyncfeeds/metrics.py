"""Metrics hooks for feed reads and writes, fanout and the manager, with two exporters.

``Metrics`` does nothing: subclass it to send the numbers anywhere, or use
``PrometheusMetrics`` (``pip install 'asyncfeeds[prometheus]'``) or
``StatsdMetrics`` (no dependency: StatsD lines over UDP). ``set_metrics(m)``
installs one for the whole process (Stream Framework's ``STREAM_METRIC_CLASS``):
every feed and manager reports there, unless a feed class sets its own
``metrics`` or a manager is built with ``Manager(metrics=...)``.
"""

from __future__ import annotations

import functools
import logging
import re
import socket
import time
from collections.abc import Callable, Coroutine, Iterator, Sized
from contextvars import ContextVar
from typing import Any, Concatenate, ParamSpec, TypeVar, cast

logger = logging.getLogger("asyncfeeds.metrics")


class Metrics:
    """The hooks; every method is a no-op so a subclass overrides only what it needs."""

    def on_feed_read(
        self, feed_class: type[Any], operation: str, count: int, duration: float
    ) -> None:
        """A read of one feed (``operation`` "slice") returned ``count`` items in ``duration`` s."""

    def on_feed_write(
        self, feed_class: type[Any], operation: str, count: int, duration: float
    ) -> None:
        """A write to one feed (``operation`` "add" or "remove") of ``count`` activities."""

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


# -- the process-wide metrics ----------------------------------------------------------

_installed: Metrics = Metrics()


def get_metrics() -> Metrics:
    """The metrics installed for the process (a no-op ``Metrics`` until ``set_metrics``)."""
    return _installed


def set_metrics(metrics: Metrics | None) -> None:
    """Install ``metrics`` for every feed and manager of the process; ``None`` turns them off."""
    global _installed
    if metrics is not None and not isinstance(metrics, Metrics):
        raise TypeError(f"set_metrics() takes a Metrics instance, got {metrics!r}")
    _installed = Metrics() if metrics is None else metrics


class ProcessMetrics(Metrics):
    """Forwards every hook to what ``set_metrics`` installed, at the time of the call.

    It is the default ``metrics`` of ``Feed`` and ``Manager``, so installing
    metrics after those classes were defined (or imported) still takes effect.
    """

    def on_feed_read(
        self, feed_class: type[Any], operation: str, count: int, duration: float
    ) -> None:
        _installed.on_feed_read(feed_class, operation, count, duration)

    def on_feed_write(
        self, feed_class: type[Any], operation: str, count: int, duration: float
    ) -> None:
        _installed.on_feed_write(feed_class, operation, count, duration)

    def on_activity_published(self, count: int = 1) -> None:
        _installed.on_activity_published(count)

    def on_activity_removed(self, count: int = 1) -> None:
        _installed.on_activity_removed(count)

    def on_activity_updated(self, count: int = 1) -> None:
        _installed.on_activity_updated(count)

    def on_fanout(
        self, feed_class: type[Any], operation: str, feed_count: int, duration: float
    ) -> None:
        _installed.on_fanout(feed_class, operation, feed_count, duration)

    def on_follow(self, count: int = 1) -> None:
        _installed.on_follow(count)

    def on_unfollow(self, count: int = 1) -> None:
        _installed.on_unfollow(count)

    def on_jobs_enqueued(self, priority: str, enqueued: int, duplicates: int) -> None:
        _installed.on_jobs_enqueued(priority, enqueued, duplicates)

    def on_job_retry(self, feed_class: type[Any], operation: str, attempt: int) -> None:
        _installed.on_job_retry(feed_class, operation, attempt)

    def on_job_dead(self, feed_class: type[Any], operation: str, tries: int) -> None:
        _installed.on_job_dead(feed_class, operation, tries)

    def on_job_refused(self, priority: str, reason: str) -> None:
        _installed.on_job_refused(priority, reason)

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
        _installed.on_queue_status(
            priority,
            queued=queued,
            in_progress=in_progress,
            retrying=retrying,
            dead=dead,
            oldest_age=oldest_age,
        )


process_metrics = ProcessMetrics()
"""The default ``metrics`` of feeds and managers: whatever ``set_metrics`` installed."""


# -- measuring feed methods ------------------------------------------------------------

S = TypeVar("S")
P = ParamSpec("P")
R = TypeVar("R")
Method = Callable[Concatenate[S, P], Coroutine[Any, Any, R]]

_measuring: ContextVar[bool] = ContextVar("asyncfeeds_measuring", default=False)
"""Set while a measured feed method runs, so the methods it calls are not counted again."""


def metered_read(operation: str) -> Callable[[Method[S, P, R]], Method[S, P, R]]:
    """Decorate a feed read: reports ``on_feed_read`` with the number of items returned."""
    return _metered(operation, write=False)


def metered_write(operation: str) -> Callable[[Method[S, P, R]], Method[S, P, R]]:
    """Decorate a feed write: reports ``on_feed_write`` with the number of activities given."""
    return _metered(operation, write=True)


def _metered(operation: str, write: bool) -> Callable[[Method[S, P, R]], Method[S, P, R]]:
    def decorate(method: Method[S, P, R]) -> Method[S, P, R]:
        call = cast("Callable[..., Coroutine[Any, Any, R]]", method)

        @functools.wraps(method)
        async def measured(feed: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
            if _measuring.get():
                return await method(feed, *args, **kwargs)
            given, arguments, keywords = (
                _given_count(args, kwargs) if write else (None, args, kwargs)
            )
            token = _measuring.set(True)
            started = time.perf_counter()
            try:
                result = await call(feed, *arguments, **keywords)
            finally:
                _measuring.reset(token)
            duration = time.perf_counter() - started
            count = given if given is not None else _result_count(result)
            _report(feed, write, operation, count, duration)
            return result

        return measured

    return decorate


def _given_count(
    args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[int | None, tuple[Any, ...], dict[str, Any]]:
    """How many activities a write was given; a one-shot iterator is read into a list first."""
    if args:
        items, args = args[0], args[1:]
        if isinstance(items, Iterator):
            items = list(items)
        return (len(items) if isinstance(items, Sized) else None), (items, *args), kwargs
    items = kwargs.get("activities")
    if isinstance(items, Iterator):
        kwargs = {**kwargs, "activities": list(items)}
        items = kwargs["activities"]
    return (len(items) if isinstance(items, Sized) else None), args, kwargs


def _result_count(result: Any) -> int:
    if isinstance(result, bool):
        return int(result)
    if isinstance(result, int):
        return result
    return len(result) if isinstance(result, Sized) else 1


def _report(feed: Any, write: bool, operation: str, count: int, duration: float) -> None:
    metrics = getattr(feed, "metrics", None)
    if not isinstance(metrics, Metrics):
        metrics = _installed
    try:
        if write:
            metrics.on_feed_write(type(feed), operation, count, duration)
        else:
            metrics.on_feed_read(type(feed), operation, count, duration)
    except Exception:
        # The feed call itself succeeded: a failing exporter must not turn it into an error.
        logger.exception("metrics hook of %s failed", type(metrics).__name__)


# -- Prometheus --------------------------------------------------------------------------


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

        def counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Any:
            return prometheus.Counter(
                name, doc, labels, namespace=namespace, registry=self.registry
            )

        def histogram(name: str, doc: str, labels: tuple[str, ...]) -> Any:
            return prometheus.Histogram(
                name, doc, labels, namespace=namespace, registry=self.registry
            )

        labels = ("feed_class", "operation")
        self.feed_reads = counter("feed_reads", "Items returned by feed reads", labels)
        self.feed_read_seconds = histogram("feed_read_seconds", "Time of one feed read", labels)
        self.feed_writes = counter("feed_writes", "Activities given to feed writes", labels)
        self.feed_write_seconds = histogram(
            "feed_write_seconds", "Time of one feed write", labels
        )
        self.published = counter("activities_published", "Activities published by users")
        self.removed = counter("activities_removed", "Activities removed by users")
        self.updated = counter("activities_updated", "Activities whose stored data was replaced")
        self.fanout_feeds = counter("fanout_feeds", "Follower feeds written by fanout", labels)
        self.fanout_seconds = histogram(
            "fanout_chunk_seconds", "Time to write one fanout chunk", labels
        )
        self.follows = counter("follows", "Users followed")
        self.unfollows = counter("unfollows", "Users unfollowed")
        self.jobs_enqueued = counter("fanout_jobs_enqueued", "Fanout jobs enqueued", ("priority",))
        self.jobs_duplicate = counter(
            "fanout_jobs_duplicate",
            "Fanout jobs not enqueued: already queued or running",
            ("priority",),
        )
        self.job_retries = counter(
            "fanout_job_retries", "Fanout jobs that failed and will be retried", labels
        )
        self.jobs_dead = counter(
            "fanout_jobs_dead", "Fanout jobs kept as dead letters after their last try", labels
        )
        self.jobs_refused = counter(
            "fanout_jobs_refused", "Fanout jobs a worker refused to run", ("priority", "reason")
        )

        def gauge(name: str, doc: str, labels: tuple[str, ...]) -> Any:
            return prometheus.Gauge(name, doc, labels, namespace=namespace, registry=self.registry)

        self.queue_jobs = gauge(
            "fanout_queue_jobs",
            "Fanout jobs by queue and state (queued, in_progress, retrying, dead)",
            ("priority", "state"),
        )
        self.queue_oldest = gauge(
            "fanout_queue_oldest_job_seconds",
            "Age of the oldest fanout job due on the queue",
            ("priority",),
        )

    def on_feed_read(
        self, feed_class: type[Any], operation: str, count: int, duration: float
    ) -> None:
        self.feed_reads.labels(feed_class.__name__, operation).inc(count)
        self.feed_read_seconds.labels(feed_class.__name__, operation).observe(duration)

    def on_feed_write(
        self, feed_class: type[Any], operation: str, count: int, duration: float
    ) -> None:
        self.feed_writes.labels(feed_class.__name__, operation).inc(count)
        self.feed_write_seconds.labels(feed_class.__name__, operation).observe(duration)

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


# -- StatsD ------------------------------------------------------------------------------

_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]")
_WRITE_NAMES = {"add": ("writes", "write_latency"), "remove": ("deletes", "delete_latency")}


def _safe(part: str) -> str:
    """A metric name part without the characters the StatsD line format reserves."""
    return _UNSAFE.sub("_", part)


def _count(name: str, value: int) -> str:
    """A StatsD counter line."""
    return f"{name}:{value}|c"


def _timing(name: str, seconds: float) -> str:
    """A StatsD timer line, in milliseconds."""
    return f"{name}:{seconds * 1000:.3f}|ms"


class StatsdMetrics(Metrics):
    """Sends the hooks to a StatsD server as standard lines (``name:1|c``, ``name:2.5|ms``).

    Each hook is one UDP datagram from a non-blocking socket, so no hook ever
    waits: a datagram that cannot be sent at once is dropped and counted in
    ``dropped``, as StatsD is lossy by design. Names follow Stream Framework's
    StatsD metrics (``<prefix>.<FeedClass>.reads``, ``...fanout_latency``); the
    host is resolved once, here.
    """

    def __init__(
        self, host: str = "localhost", port: int = 8125, prefix: str | None = "asyncfeeds"
    ) -> None:
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise ValueError(f"StatsD port must be an int from 1 to 65535, got {port!r}")
        try:
            family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
        except (OSError, UnicodeError, ValueError) as exc:
            raise ValueError(f"StatsD server {host}:{port} cannot be resolved: {exc}") from exc
        self.address = address
        self.prefix = f"{_safe(prefix)}." if prefix else ""
        self.dropped = 0
        self._socket = socket.socket(family, socket.SOCK_DGRAM)
        self._socket.setblocking(False)

    def send(self, *lines: str) -> None:
        """Send StatsD lines (without the prefix) in one datagram; drop it if it cannot go now."""
        payload = "\n".join(self.prefix + line for line in lines).encode()
        try:
            self._socket.sendto(payload, self.address)
        except OSError:
            self.dropped += 1

    def close(self) -> None:
        """Close the socket; later hooks are dropped."""
        self._socket.close()

    def on_feed_read(
        self, feed_class: type[Any], operation: str, count: int, duration: float
    ) -> None:
        name = _safe(feed_class.__name__)
        self.send(_count(f"{name}.reads", count), _timing(f"{name}.read_latency", duration))

    def on_feed_write(
        self, feed_class: type[Any], operation: str, count: int, duration: float
    ) -> None:
        name = _safe(feed_class.__name__)
        op = _safe(operation)
        total, latency = _WRITE_NAMES.get(operation, (op, f"{op}_latency"))
        self.send(_count(f"{name}.{total}", count), _timing(f"{name}.{latency}", duration))

    def on_activity_published(self, count: int = 1) -> None:
        self.send(_count("activities.published", count))

    def on_activity_removed(self, count: int = 1) -> None:
        self.send(_count("activities.removed", count))

    def on_activity_updated(self, count: int = 1) -> None:
        self.send(_count("activities.updated", count))

    def on_fanout(
        self, feed_class: type[Any], operation: str, feed_count: int, duration: float
    ) -> None:
        name = _safe(feed_class.__name__)
        self.send(
            _count(f"{name}.fanout.{_safe(operation)}", feed_count),
            _timing(f"{name}.fanout_latency", duration),
        )

    def on_follow(self, count: int = 1) -> None:
        self.send(_count("follows", count))

    def on_unfollow(self, count: int = 1) -> None:
        self.send(_count("unfollows", count))

    def on_jobs_enqueued(self, priority: str, enqueued: int, duplicates: int) -> None:
        name = f"fanout.jobs.{_safe(priority)}"
        self.send(_count(f"{name}.enqueued", enqueued), _count(f"{name}.duplicate", duplicates))

    def on_job_retry(self, feed_class: type[Any], operation: str, attempt: int) -> None:
        self.send(_count(f"{_safe(feed_class.__name__)}.fanout.{_safe(operation)}.retries", 1))

    def on_job_dead(self, feed_class: type[Any], operation: str, tries: int) -> None:
        self.send(_count(f"{_safe(feed_class.__name__)}.fanout.{_safe(operation)}.dead", 1))

    def on_job_refused(self, priority: str, reason: str) -> None:
        self.send(_count(f"fanout.jobs.{_safe(priority)}.refused.{_safe(reason)}", 1))

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
        name = f"fanout.queue.{_safe(priority)}"
        states = {"queued": queued, "in_progress": in_progress, "retrying": retrying,
                  "dead": dead}
        self.send(
            *(f"{name}.{state}:{value}|g" for state, value in states.items()),
            f"{name}.oldest_age:{oldest_age:.3f}|g",
        )


__all__ = [
    "Metrics",
    "ProcessMetrics",
    "PrometheusMetrics",
    "StatsdMetrics",
    "get_metrics",
    "metered_read",
    "metered_write",
    "process_metrics",
    "set_metrics",
]
