"""The ``asyncfeeds`` command line: ``demo``, ``worker`` and ``setup``.

Heavy imports (the demo, the fanout worker) happen inside the commands, so
``asyncfeeds --help`` is quick and each command fails on its own.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import os
import sys
from typing import Any

import click

from .exceptions import StorageUnavailableError


class ImportPath(click.ParamType):
    """A ``module:attribute`` path, checked by importing it; the value stays the string."""

    name = "MODULE:ATTR"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        try:
            load_object(value)
        except ValueError as error:
            self.fail(str(error), param, ctx)
        return value


def load_object(path: str) -> Any:
    """Import ``module:attr`` (dots allowed in attr) relative to the current directory too."""
    module_name, sep, attr_path = path.partition(":")
    if not sep or not module_name or not attr_path:
        raise ValueError(f"{path!r} is not of the form module:attribute (say myapp.feeds:manager)")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(f"cannot import module {module_name!r}: {error}") from None
    for attr in attr_path.split("."):
        try:
            target = getattr(target, attr)
        except AttributeError:
            raise ValueError(f"module {module_name!r} has no attribute {attr_path!r}") from None
    return target


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="asyncfeeds", prog_name="asyncfeeds")
def main() -> None:
    """asyncio-native activity feeds: flat, aggregated and notification feeds with fanout."""


@main.command()
@click.option(
    "--backend",
    type=click.Choice(["memory", "redis", "cassandra"]),
    default="memory",
    show_default=True,
    help="Storage to run on; redis reads ASYNCFEEDS_REDIS_URL, cassandra ASYNCFEEDS_CASSANDRA_*.",
)
@click.option(
    "--users",
    type=click.IntRange(3, 5000),
    default=30,
    show_default=True,
    help="How many users the world has.",
)
@click.option("--no-progress", is_flag=True, help="Hide the fanout progress bar.")
def demo(backend: str, users: int, no_progress: bool) -> None:
    """Run a small Pinterest-like world end to end and print one user's feeds."""
    from .demo import DemoError, run_demo

    progress = None if no_progress else sys.stderr
    try:
        asyncio.run(run_demo(backend=backend, users=users, out=sys.stdout, progress=progress))
    except (DemoError, StorageUnavailableError) as error:
        raise click.ClickException(str(error)) from None


@main.command()
@click.option(
    "--manager",
    "manager_path",
    type=ImportPath(),
    required=True,
    help="Import path of your Manager instance, such as myapp.feeds:manager.",
)
@click.option(
    "--priority",
    type=click.Choice(["high", "low"]),
    required=True,
    help="Which fanout queue this worker serves.",
)
def worker(manager_path: str, priority: str) -> None:
    """Run an arq worker for one fanout priority queue, until SIGTERM or SIGINT.

    The queue is the manager's queue_url, else ASYNCFEEDS_QUEUE_URL, else ASYNCFEEDS_REDIS_URL.
    """
    try:
        from .fanout.manager import Manager
        from .fanout.worker import run_worker
    except ImportError as error:
        raise click.ClickException(f"the fanout worker is not available: {error}") from None
    manager = load_object(manager_path)
    is_manager_class = isinstance(manager, type) and issubclass(manager, Manager)
    if not (isinstance(manager, Manager) or is_manager_class):
        raise click.BadParameter(
            f"{manager_path!r} is not an asyncfeeds Manager", param_hint="'--manager'"
        )
    try:
        result = run_worker(manager_path, priority)
        if inspect.iscoroutine(result):
            asyncio.run(result)
    except StorageUnavailableError as error:
        raise click.ClickException(str(error)) from None


@main.command()
@click.option(
    "--feeds",
    "feed_paths",
    type=ImportPath(),
    multiple=True,
    required=True,
    help="Import path of a feed class, such as myapp.feeds:PinFeed; repeat or list several.",
)
@click.argument("more_feed_paths", nargs=-1, type=ImportPath(), metavar="[MODULE:CLASS]...")
def setup(feed_paths: tuple[str, ...], more_feed_paths: tuple[str, ...]) -> None:
    """Create what the feed classes' backends need (Cassandra tables); idempotent."""
    from . import aclose
    from . import setup as setup_feeds
    from .feeds.base import Feed

    classes = []
    for path in (*feed_paths, *more_feed_paths):
        feed_class = load_object(path)
        if not (isinstance(feed_class, type) and issubclass(feed_class, Feed)):
            raise click.BadParameter(f"{path!r} is not a feed class", param_hint="'--feeds'")
        classes.append(feed_class)

    async def run() -> None:
        try:
            await setup_feeds(*classes)
        finally:
            await aclose()

    try:
        asyncio.run(run())
    except StorageUnavailableError as error:
        raise click.ClickException(str(error)) from None
    noun = "class" if len(classes) == 1 else "classes"
    click.echo(f"set up {len(classes)} feed {noun}: {', '.join(c.__name__ for c in classes)}")


if __name__ == "__main__":
    main()
