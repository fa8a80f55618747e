"""What a worker did, counted by its jobs and summed up when it stops."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass(slots=True)
class WorkerStats:
    """Job outcomes of one worker process (shared by its jobs through arq's ``ctx``)."""

    done: int = 0
    retried: int = 0
    dead: int = 0
    refused: int = 0
    outages: int = 0
    started: float = field(default_factory=time.monotonic)

    def summary(self) -> str:
        """One line: the counts and how long the worker ran."""
        return (
            f"{self.done} jobs done, {self.retried} retried, {self.dead} dead, "
            f"{self.refused} refused, {self.outages} Redis outages, "
            f"up {time.monotonic() - self.started:.1f} s"
        )
