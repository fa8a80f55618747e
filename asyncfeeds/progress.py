"""A progress bar for the command line: tqdm's when it is installed, else a plain text one.

tqdm is optional (``pip install 'asyncfeeds[progress]'``); both bars take
``update(n)``, which is also the shape of ``Manager``'s ``progress`` callbacks.
"""

from __future__ import annotations

import importlib
import time
from types import TracebackType
from typing import Any, Protocol, TextIO


class Bar(Protocol):
    """What the commands use of a progress bar."""

    def update(self, n: int = 1) -> Any: ...

    def close(self) -> None: ...


class TextBar:
    """``fanout:  45% 123/270 feeds``, redrawn in place at most ten times a second."""

    def __init__(self, total: int, desc: str, unit: str, file: TextIO | None) -> None:
        self.total = max(total, 0)
        self.desc = desc
        self.unit = unit
        self.file = file
        self.n = 0
        self._drawn = 0.0
        self._closed = False

    def update(self, n: int = 1) -> None:
        """Count ``n`` more units done."""
        self.n += n
        now = time.monotonic()
        if now - self._drawn >= 0.1:
            self._drawn = now
            self._draw(end="")

    def close(self) -> None:
        """Draw the final state and end the line."""
        if not self._closed:
            self._closed = True
            self._draw(end="\n")

    def _draw(self, end: str) -> None:
        if self.file is None:
            return
        percent = 100 if self.total == 0 else min(100, self.n * 100 // self.total)
        self.file.write(f"\r{self.desc}: {percent:3d}% {self.n}/{self.total}{self.unit}{end}")
        self.file.flush()


class ProgressBar:
    """A context manager giving tqdm's bar if tqdm is importable, else a ``TextBar``;
    with ``file=None`` nothing is drawn."""

    def __init__(self, total: int, desc: str, unit: str = "", file: TextIO | None = None) -> None:
        self.bar: Bar
        try:
            tqdm = importlib.import_module("tqdm").tqdm
        except ImportError:
            self.bar = TextBar(total, desc, unit, file)
        else:
            self.bar = tqdm(total=total, desc=desc, unit=unit, file=file, disable=file is None,
                            leave=True, dynamic_ncols=True)

    def __enter__(self) -> Bar:
        return self.bar

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.bar.close()
