"""Progress callbacks of eager fanout and imports, the text progress bar, and the fanout logs."""

from __future__ import annotations

import io
import logging
from typing import Any

import pytest
from helpers import Backend, make_activity

from asyncfeeds import FanoutPriority, Manager
from asyncfeeds.progress import ProgressBar, TextBar


def eager_manager(backend: Backend) -> Manager:
    class Counted(Manager):
        feed_classes = {"flat": backend.feed("flat"), "aggregated": backend.feed("aggregated")}
        user_feed_class = backend.feed("flat")
        fanout_chunk_size = 10

        async def get_user_follower_ids(self, user_id: Any) -> Any:
            return {FanoutPriority.HIGH: range(100, 125), FanoutPriority.LOW: iter([200])}

    return Counted()


async def test_eager_fanout_reports_each_chunk_of_feeds_written(memory_backend: Backend) -> None:
    manager = eager_manager(memory_backend)
    written: list[int] = []
    activity = make_activity(1, actor=1)
    await manager.add_user_activity(1, activity, progress=written.append)
    assert sorted(written) == [1, 1, 5, 5, 10, 10, 10, 10]  # 26 followers, 2 feed classes
    removed: list[int] = []
    await manager.remove_user_activity(1, activity, progress=removed.append)
    assert sum(removed) == 2 * 26


async def test_batch_import_reports_activities_and_runs_without_a_callback(
    memory_backend: Backend,
) -> None:
    manager = eager_manager(memory_backend)
    imported: list[int] = []
    activities = [make_activity(n, actor=2) for n in range(2, 12)]
    await manager.batch_import(2, activities, chunk_size=4, progress=imported.append)
    assert imported == [4, 4, 2]
    await manager.batch_import(3, [make_activity(20, actor=3)])
    assert await manager.get_user_feed(3).count() == 1


async def test_chunks_log_at_debug_under_the_modules_logger(
    memory_backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    manager = eager_manager(memory_backend)
    with caplog.at_level(logging.DEBUG, logger="asyncfeeds"):
        await manager.add_user_activity(4, make_activity(30, actor=4))
    chunks = [r for r in caplog.records if r.name == "asyncfeeds.fanout.manager"]
    assert len(chunks) == 8 and {r.levelno for r in chunks} == {logging.DEBUG}
    assert "fanout add of 1 activities to 10 " in chunks[0].getMessage()


def test_the_text_bar_counts_to_100_percent_and_ends_its_line() -> None:
    out = io.StringIO()
    bar = TextBar(total=40, desc="import", unit=" pins", file=out)
    for _ in range(4):
        bar.update(10)
    bar.close()
    bar.close()
    assert out.getvalue().endswith("\rimport: 100% 40/40 pins\n")
    assert out.getvalue().count("\n") == 1
    with ProgressBar(5, "quiet", file=None) as silent:
        silent.update(5)
