"""arq workers for the fanout queues: one worker serves one priority of one manager.

``create_worker`` builds an ``arq.worker.Worker`` (run it in-process with
``async_run()``, or ``run()``); ``run_worker`` is what ``asyncfeeds worker``
runs: it blocks until SIGTERM or SIGINT, then finishes the job in hand.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from arq.worker import Worker, func

from ..config import aclose
from . import jobs
from .manager import FanoutPriority, Manager
from .queue import create_queue, queue_settings

logger = logging.getLogger("asyncfeeds.fanout")


def worker_settings(manager: Manager, priority: FanoutPriority | str) -> dict[str, Any]:
    """arq ``Worker`` keyword arguments for one priority queue of ``manager``.

    The dict also works as arq's own ``WorkerSettings``
    (``WorkerSettings = worker_settings(manager, "high")``, then ``arq myapp.WorkerSettings``);
    its Redis is ``Manager.queue_url``, else ``ASYNCFEEDS_QUEUE_URL``.
    """
    return {**_job_settings(manager, priority), "redis_settings": queue_settings(manager.queue_url)}


def _job_settings(manager: Manager, priority: FanoutPriority | str) -> dict[str, Any]:
    if not isinstance(manager, Manager):
        raise TypeError(f"expected an asyncfeeds Manager, got {manager!r}")
    queue_name = manager.queue_names[_priority(priority)]
    # Our own timeout inside the job turns a slow write into a retry; arq's is the backstop.
    timeout = manager.job_timeout + 1
    return {
        "functions": [
            func(
                jobs.asyncfeeds_fanout,
                name=jobs.JOB_FUNCTION,
                timeout=timeout,
                keep_result=0,
                keep_result_forever=False,
                max_tries=manager.max_tries,
            )
        ],
        "queue_name": queue_name,
        "job_serializer": jobs.dumps,
        "job_deserializer": jobs.loads,
        # No results are kept, so a finished job's id is free again for the same work later.
        "keep_result": 0,
        "keep_result_forever": False,
        "max_tries": manager.max_tries,
        "job_timeout": timeout,
        "job_completion_wait": timeout,
        # Fanout is latency-sensitive: look for new jobs every 0.1 s rather than arq's 0.5 s.
        "poll_delay": 0.1,
        "ctx": {"asyncfeeds_manager": manager},
        "on_shutdown": _close_storages,
    }


def create_worker(
    manager: Manager, priority: FanoutPriority | str, **arq_kwargs: Any
) -> Worker:
    """An arq worker running ``manager``'s fanout jobs from the ``priority`` queue.

    ``arq_kwargs`` override the defaults (say ``burst=True`` or ``redis_pool=...``);
    without a Redis given, it uses the manager's queue or ``Manager.queue_url``.
    """
    settings = _job_settings(manager, priority)
    if "redis_pool" not in arq_kwargs and "redis_settings" not in arq_kwargs:
        if manager.queue is not None:
            settings["redis_pool"] = manager.job_queue
        else:
            settings["redis_settings"] = queue_settings(manager.queue_url)
    if "ctx" in arq_kwargs:
        arq_kwargs["ctx"] = {**arq_kwargs["ctx"], **settings["ctx"]}
    return Worker(**{**settings, **arq_kwargs})


async def serve(manager: Manager, priority: FanoutPriority | str, **arq_kwargs: Any) -> None:
    """Run a worker in the running loop until it is stopped by SIGTERM or SIGINT."""
    priority = _priority(priority)
    pool = await create_queue(queue_settings(manager.queue_url))
    worker = create_worker(manager, priority, redis_pool=pool, **arq_kwargs)
    logger.info("fanout worker for %s on %s", manager.import_path, manager.queue_names[priority])
    try:
        await worker.async_run()
    except asyncio.CancelledError:
        logger.info("fanout worker stopped")
    finally:
        await worker.close()


def run_worker(manager_path: str, priority: str) -> None:
    """Import the manager at ``module:attr`` and serve its ``priority`` queue until stopped."""
    manager = jobs.load_manager(manager_path)
    asyncio.run(serve(manager, _priority(priority)))


def _priority(priority: FanoutPriority | str) -> FanoutPriority:
    try:
        return FanoutPriority(priority.lower() if isinstance(priority, str) else priority)
    except ValueError:
        raise ValueError(f"priority must be 'high' or 'low', got {priority!r}") from None


async def _close_storages(ctx: dict[str, Any]) -> None:
    await aclose()
