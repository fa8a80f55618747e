"""``asyncfeeds.worker.create_worker``: arq workers for the fanout queues."""

from .fanout.worker import create_worker, run_worker, serve, worker_settings

__all__ = ["create_worker", "run_worker", "serve", "worker_settings"]
