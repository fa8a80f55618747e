"""Records that it was imported (in the file ``IMPORT_RECORDER_FILE`` names).

A fanout job may name this module as its manager: a worker must refuse the job
without ever importing it, so the file must never appear.
"""

from __future__ import annotations

import os
from pathlib import Path

_marker = os.environ.get("IMPORT_RECORDER_FILE")
if _marker:
    Path(_marker).write_text(f"imported by process {os.getpid()}\n")

manager = None
