"""Fanout: the ``Manager`` that pushes activities to followers, its arq jobs and workers."""

from .manager import FanoutPriority, Manager
from .queue import create_queue
from .worker import create_worker, run_worker

__all__ = ["FanoutPriority", "Manager", "create_queue", "create_worker", "run_worker"]
