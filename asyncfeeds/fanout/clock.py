"""Versions for arq-mode manager calls, from one clock on the queue's Redis.

Every process that enqueues into the same queue takes its versions here, so
calls made one after another on different hosts are ordered even when the
hosts' clocks differ: the version is ``max(Redis TIME in µs, last + 1)``.
"""

from __future__ import annotations

import weakref
from typing import Any

from .. import versions

CLOCK_KEY = "asyncfeeds:clock"

_NEXT_VERSION = """
local now = redis.call('TIME')
local micros = tonumber(now[1]) * 1000000 + tonumber(now[2])
local last = tonumber(redis.call('GET', KEYS[1]) or '0')
local version = math.max(micros, last + 1)
redis.call('SET', KEYS[1], string.format('%.0f', version))
return string.format('%.0f', version)
"""

_scripts: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


async def next_version(redis: Any) -> int:
    """A new version from the queue's Redis; this process's clock moves past it too."""
    script = _scripts.get(redis)
    if script is None:
        script = _scripts[redis] = redis.register_script(_NEXT_VERSION)
    version = int(await script(keys=[CLOCK_KEY]))
    versions.observe(version)
    return version
