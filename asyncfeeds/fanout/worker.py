"""arq workers for the fanout queues: one worker serves one priority of one manager.

``create_worker`` builds an ``arq.worker.Worker`` (run it in-process with
``async_run()``, or ``run()``); ``serve`` is what ``asyncfeeds worker`` runs:
it logs its start, reconnects with backoff when the queue's Redis goes away
(arq's own loop would end on the first ``ConnectionError``), stops on SIGTERM
or SIGINT after the job in hand, and logs a summary.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random
import signal
import time
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from arq.constants import health_check_key_suffix
from arq.worker import Worker, func
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..config import aclose
from ..importing import ImportPathError, import_object
from ..metrics import Metrics
from . import jobs
from .manager import FanoutPriority, Manager
from .payload import JOB_FUNCTION, dumps, loads
from .queue import create_queue, pool_address, queue_client, queue_settings
from .stats import WorkerStats
from .status import report_queue_status

logger = logging.getLogger(__name__)

OUTAGE = (RedisConnectionError, RedisTimeoutError, OSError)
"""What a lost or hung queue Redis raises inside arq's loop."""
ARQ_MAX_JOBS = 10
"""arq's default number of jobs one worker runs at once."""
HEALTH_CHECK_INTERVAL = 10
"""Seconds between a worker's health records (``asyncfeeds worker --check`` reads them)."""
BURY_MARGIN = 10
"""Tries arq allows beyond ``max_tries``: the job function itself turns a job whose last
try was cut short into a dead letter, and needs a try to do so."""
MAX_BACKOFF = 10.0
"""Longest wait, in seconds, between two reconnection attempts."""
STATUS_INTERVAL = 15.0
"""Seconds between two queue status reports to ``Metrics.on_queue_status``."""
POLL_DELAY = 0.05
"""Seconds between two looks at the queue while a worker has room for more jobs."""


def worker_settings(manager: Manager, priority: FanoutPriority | str) -> dict[str, Any]:
    """arq ``Worker`` keyword arguments for one priority queue of ``manager``.

    The dict also works as arq's own ``WorkerSettings``
    (``WorkerSettings = worker_settings(manager, "high")``, then ``arq myapp.WorkerSettings``);
    its Redis is found by ``queue_url`` (``Manager.queue_url``, else ``ASYNCFEEDS_QUEUE_URL``,
    else the feeds' default Redis) and its pool has connect and socket timeouts.
    """
    settings = queue_settings(manager.queue_url)
    return {
        **_job_settings(manager, priority),
        "redis_settings": settings,
        "redis_pool": queue_client(settings),
    }


def _job_settings(manager: Manager, priority: FanoutPriority | str) -> dict[str, Any]:
    if not isinstance(manager, Manager):
        raise TypeError(f"expected an asyncfeeds Manager, got {manager!r}")
    priority = _priority(priority)
    queue_name = manager.queue_names[priority]
    # Our own timeout inside the job turns a slow write into a retry; arq's is the backstop.
    timeout = manager.job_timeout + 1
    return {
        "functions": [
            func(
                jobs.asyncfeeds_fanout,
                name=JOB_FUNCTION,
                timeout=timeout,
                keep_result=0,
                keep_result_forever=False,
                max_tries=manager.max_tries + BURY_MARGIN,
            )
        ],
        "queue_name": queue_name,
        "job_serializer": dumps,
        "job_deserializer": loads,
        # No results are kept, so a finished job's id is free again for the same work later.
        "keep_result": 0,
        "keep_result_forever": False,
        "max_tries": manager.max_tries,
        "job_timeout": timeout,
        "job_completion_wait": timeout,
        # Fanout is latency-sensitive: look for new jobs every 0.05 s rather than arq's 0.5 s
        # (an idle worker's poll is one ZRANGEBYSCORE), and read only as many as run at once,
        # so a job whose worker died (its mark lapsed) is seen at the next poll instead of
        # after a backlog of up to 100 ids.
        "poll_delay": POLL_DELAY,
        "queue_read_limit": ARQ_MAX_JOBS,
        "health_check_interval": HEALTH_CHECK_INTERVAL,
        "ctx": {
            "asyncfeeds_manager": manager,
            "asyncfeeds_priority": priority.value,
            "asyncfeeds_queue": queue_name,
            "asyncfeeds_stats": WorkerStats(),
        },
        "on_shutdown": _close_storages,
    }


def create_worker(
    manager: Manager, priority: FanoutPriority | str, **arq_kwargs: Any
) -> Worker:
    """An arq worker running ``manager``'s fanout jobs from the ``priority`` queue.

    ``arq_kwargs`` override the defaults (say ``burst=True`` or ``redis_pool=...``);
    without a Redis given, it uses the manager's queue or ``queue_url()``. The worker
    marks a job it starts as running for ``Manager.job_lease`` seconds (renewed while
    it runs), so a killed worker's job is run again that soon.
    """
    settings = _job_settings(manager, priority)
    if "redis_pool" not in arq_kwargs and "redis_settings" not in arq_kwargs:
        if manager.queue is not None:
            settings["redis_pool"] = manager.job_queue
        else:
            settings["redis_pool"] = queue_client(queue_settings(manager.queue_url))
    if "ctx" in arq_kwargs:
        arq_kwargs["ctx"] = {**arq_kwargs["ctx"], **settings["ctx"]}
    if "max_jobs" in arq_kwargs:
        settings["queue_read_limit"] = arq_kwargs["max_jobs"]
    worker = Worker(**{**settings, **arq_kwargs})
    worker.in_progress_timeout_s = manager.job_lease
    return worker


async def serve(
    manager: Manager,
    priority: FanoutPriority | str,
    *,
    config: Callable[[], Any] | None = None,
    **arq_kwargs: Any,
) -> WorkerStats:
    """Run a worker in the running loop until SIGTERM or SIGINT (or, with ``burst=True``,
    until its queue is empty); returns what it did.

    ``config`` (sync or async, no arguments) runs first: the application's own
    ``asyncfeeds.configure(...)``. A queue Redis that cannot be reached at start
    raises ``StorageUnavailableError``; one lost later is waited for with backoff.
    """
    priority = _priority(priority)
    await run_config(config)
    settings = queue_settings(manager.queue_url)
    pool = await create_queue(settings)
    worker = create_worker(manager, priority, redis_pool=pool, **arq_kwargs)
    stats: WorkerStats = worker.ctx["asyncfeeds_stats"]
    where = pool_address(pool)
    stopped_by: list[str] = []
    stopping = asyncio.Event()

    def on_stop(signum: signal.Signals) -> None:
        stopped_by.append(signal.Signals(signum).name)
        stopping.set()

    worker.on_stop = on_stop
    await _log_start(manager, priority, worker, pool)
    reporter = None
    if type(manager.metrics).on_queue_status is not Metrics.on_queue_status:
        reporter = asyncio.create_task(_report_status(manager, pool))
    try:
        await _run(worker, pool, stopping, stats, where)
    finally:
        if reporter is not None:
            reporter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reporter
        await _shutdown(worker, pool, where)
        reason = stopped_by[0] if stopped_by else ("queue empty" if worker.burst else "stopped")
        logger.info("asyncfeeds worker stopped (%s): %s", reason, stats.summary())
    return stats


async def _run(
    worker: Worker, pool: Any, stopping: asyncio.Event, stats: WorkerStats, where: str
) -> None:
    """arq's loop, started again after each Redis outage until the worker is stopped."""
    while True:
        try:
            await _run_until_stopped(worker, stopping)
            return
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise
            return  # arq's signal handler cancelled its loop
        except OUTAGE as error:
            if stopping.is_set():
                return
            stats.outages += 1
            logger.warning(
                "lost the queue's Redis at %s (%s: %s); reconnecting with backoff",
                where, type(error).__name__, error,
            )
            if not await _reconnect(worker, pool, stopping, where):
                return


async def _run_until_stopped(worker: Worker, stopping: asyncio.Event) -> None:
    """arq's loop; once a stop is asked, cancel it again until it ends (redis-py on
    Python 3.11 can swallow a cancellation that lands while a command is sent)."""
    run = asyncio.ensure_future(worker.async_run())
    stop = asyncio.ensure_future(stopping.wait())
    try:
        await asyncio.wait({run, stop}, return_when=asyncio.FIRST_COMPLETED)
        while not run.done():
            if worker.main_task is not None:
                worker.main_task.cancel()
            await asyncio.wait({run}, timeout=0.5)
    finally:
        stop.cancel()
        if not run.done():  # this task itself is being cancelled
            run.cancel()
    await run


async def _reconnect(worker: Worker, pool: Any, stopping: asyncio.Event, where: str) -> bool:
    """Ping the queue's Redis with growing pauses until it answers (True) or a stop (False)."""
    started = time.monotonic()
    delay = 0.2
    next_note = 30.0
    while True:
        _forget_finished_tasks(worker)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), delay)
        if stopping.is_set():
            return False
        try:
            await pool.ping()
        except OUTAGE as error:
            waited = time.monotonic() - started
            if waited >= next_note:
                logger.warning("still no answer from the queue's Redis at %s after %.0f s: %s",
                               where, waited, error)
                next_note += 30.0
            delay = min(delay * 2, MAX_BACKOFF) * random.uniform(0.8, 1.2)
            continue
        logger.info("reconnected to the queue's Redis at %s after %.1f s; going on",
                    where, time.monotonic() - started)
        return True


def _forget_finished_tasks(worker: Worker) -> None:
    """Drop finished job tasks (arq would re-raise their Redis errors on its next loop)."""
    for job_id, task in list(worker.tasks.items()):
        if task.done():
            del worker.tasks[job_id]
            if not task.cancelled() and task.exception() is not None:
                logger.debug("job %s ended with %r", job_id, task.exception())


async def _shutdown(worker: Worker, pool: Any, where: str) -> None:
    """Let the jobs in hand end, drop the health key and close every connection."""
    await asyncio.gather(*worker.tasks.values(), return_exceptions=True)
    worker.tasks.clear()
    try:
        await worker.close()
    except (*OUTAGE, RedisError) as error:
        logger.warning("could not tidy up on the queue's Redis at %s: %s", where, error)
        await _close_storages(worker.ctx)
        await pool.aclose()


async def _log_start(
    manager: Manager, priority: FanoutPriority, worker: Worker, pool: Any
) -> None:
    try:
        server = await pool.info("server")
        redis_version = f"Redis {server.get('redis_version', '?')}"
    except OUTAGE:
        redis_version = "Redis"
    try:
        package = version("asyncfeeds")
    except PackageNotFoundError:
        package = "?"
    logger.info(
        "asyncfeeds worker %s started%s: manager %s, queue %s on %s at %s; "
        "up to %d jobs at a time, %d tries, job timeout %.0f s, lease %.0f s, dead letters on %s",
        package, " (burst)" if worker.burst else "", manager.import_path,
        manager.queue_names[priority], redis_version, pool_address(pool), worker.max_jobs,
        manager.max_tries, manager.job_timeout, manager.job_lease, manager.dead_letter_key,
    )


async def _report_status(manager: Manager, pool: Any) -> None:
    """Hand the queues' status to the metrics hook every ``STATUS_INTERVAL`` seconds."""
    while True:
        try:
            await report_queue_status(manager, pool)
        except (*OUTAGE, RedisError) as error:
            logger.debug("queue status not reported: %s", error)
        await asyncio.sleep(STATUS_INTERVAL)


def load_manager(path: str) -> Manager:
    """The manager at ``module:attr``: an instance, or a Manager subclass to instantiate."""
    try:
        target = import_object(path)
    except ImportPathError as error:
        raise ImportPathError(f"cannot import manager {path!r}: {error}") from None
    if isinstance(target, type) and issubclass(target, Manager):
        try:
            target = target()
        except Exception as error:
            raise ImportPathError(
                f"cannot instantiate manager {path!r}: {type(error).__name__}: {error}"
            ) from error
    if not isinstance(target, Manager):
        raise ImportPathError(f"{path!r} is not an asyncfeeds Manager")
    return target


def load_config(path: str) -> Callable[[], Any]:
    """The configuration function at ``module:function`` (sync or async, no arguments)."""
    target = import_object(path)
    if not callable(target):
        raise ImportPathError(f"{path!r} is not a function")
    config: Callable[[], Any] = target
    return config


async def run_config(config: Callable[[], Any] | None) -> None:
    """Run the application's configuration function (sync or async), if any."""
    if config is None:
        return
    result = config()
    if inspect.isawaitable(result):
        await result
    logger.debug("ran the configuration %r", config)


def run_worker(
    manager_path: str,
    priority: str,
    *,
    config_path: str | None = None,
    burst: bool = False,
) -> WorkerStats:
    """Import the manager at ``module:attr`` and serve its ``priority`` queue until stopped."""
    manager = load_manager(manager_path)
    config = load_config(config_path) if config_path else None
    return asyncio.run(serve(manager, _priority(priority), config=config, burst=burst))


async def worker_health(
    manager: Manager, priority: FanoutPriority | str, *, config: Callable[[], Any] | None = None
) -> str | None:
    """The last health record of a worker on the queue (arq's health key, written every
    ``HEALTH_CHECK_INTERVAL`` seconds), or None if no worker wrote one recently."""
    await run_config(config)
    queue_name = manager.queue_names[_priority(priority)]
    pool = await create_queue(queue_settings(manager.queue_url))
    try:
        raw = await pool.get(queue_name + health_check_key_suffix)
    finally:
        await pool.aclose()
    return raw.decode() if raw else None


def _priority(priority: FanoutPriority | str) -> FanoutPriority:
    try:
        return FanoutPriority(priority.lower() if isinstance(priority, str) else priority)
    except ValueError:
        raise ValueError(f"priority must be 'high' or 'low', got {priority!r}") from None


async def _close_storages(ctx: dict[str, Any]) -> None:
    await aclose()
