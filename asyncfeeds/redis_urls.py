"""Redis URLs and options turned into client arguments, checked before any connection.

``redis://[user:password@]host:port/db``, ``rediss://`` for TLS, ``unix:///path`` and
``redis+cluster://host:port,host:port,...`` (or ``rediss+cluster://``) for a Redis
Cluster given by several seed nodes. TLS and connection options come as URL query
options or as ``configure`` options of the same names; anything else is refused here,
so a typo is a clear ``ValueError`` instead of a failure at the first command.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
PLAIN_SCHEMES = ("redis", "rediss", "unix")

_FLOAT = ("socket_timeout", "socket_connect_timeout")
_INT = ("health_check_interval", "max_connections")
_BOOL = ("ssl_check_hostname", "socket_keepalive")
_TEXT = ("client_name", "username", "password")
TLS_OPTIONS = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_cert_reqs", "ssl_ciphers")
OPTIONS = frozenset((*_FLOAT, *_INT, *_BOOL, *_TEXT, *TLS_OPTIONS, "ssl_check_hostname", "db"))
"""Options a URL query or ``configure`` may set (the names redis-py uses)."""
_CERT_REQS = ("none", "optional", "required")


@dataclass(frozen=True)
class RedisTarget:
    """Where a Redis URL points and the client arguments it implies."""

    url: str
    cluster: bool
    tls: bool
    seeds: tuple[tuple[str, int], ...] = ()
    path: str | None = None
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def address(self) -> str:
        """Every seed as ``host:port`` (or the socket path), for error messages."""
        if self.path is not None:
            return self.path
        return ", ".join(f"{host}:{port}" for host, port in self.seeds)


def parse_redis_url(url: str, overrides: Mapping[str, Any] | None = None) -> RedisTarget:
    """The target of ``url`` with ``overrides`` (``configure`` options) winning over its query."""
    if not isinstance(url, str) or "://" not in url:
        raise ValueError(f"a Redis URL like redis://host:port/db is needed, got {url!r}")
    scheme, rest = url.split("://", 1)
    scheme = scheme.lower()
    if scheme not in CLUSTER_SCHEMES and scheme not in PLAIN_SCHEMES:
        raise ValueError(
            f"unsupported Redis URL scheme {scheme!r} in {_safe(url)!r}: use redis://, rediss://, "
            f"unix://, redis+cluster:// or rediss+cluster://"
        )
    cluster = scheme in CLUSTER_SCHEMES
    tls = scheme in ("rediss", "rediss+cluster")
    parts = urlsplit("x://" + rest)
    options = _query_options(url, parts.query)
    userinfo, _, hosts = parts.netloc.rpartition("@")
    if userinfo:
        user, has_password, password = userinfo.partition(":")
        if user:
            options["username"] = unquote(user)
        if has_password:
            options["password"] = unquote(password)
    path = parts.path.strip("/")
    if scheme == "unix":
        if not parts.path:
            raise ValueError(f"{_safe(url)!r} names no socket path")
        target_path: str | None = unquote(parts.path)
        seeds: tuple[tuple[str, int], ...] = ()
    else:
        target_path = None
        seeds = tuple(_seed(url, seed) for seed in hosts.split(","))
        if len(seeds) > 1 and not cluster:
            raise ValueError(
                f"{_safe(url)!r} lists several hosts: use redis+cluster:// for a Redis Cluster"
            )
        if path:
            if not path.isdigit():
                raise ValueError(f"the database in {_safe(url)!r} must be a number")
            options.setdefault("db", int(path))
    for name, value in (overrides or {}).items():
        if name not in OPTIONS:
            raise ValueError(f"unknown Redis option {name!r}; known: {sorted(OPTIONS)}")
        options[name] = _convert(url, name, value)
    if cluster and options.get("db"):
        raise ValueError(f"a Redis Cluster has database 0 only, {_safe(url)!r} asks for another")
    given_tls = sorted(set(options) & set(TLS_OPTIONS))
    if given_tls and not tls:
        raise ValueError(f"{given_tls} need a TLS URL (rediss:// or rediss+cluster://)")
    return RedisTarget(url, cluster, tls, seeds, target_path, options)


def _query_options(url: str, query: str) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name not in OPTIONS:
            raise ValueError(
                f"unknown option {name!r} in Redis URL {_safe(url)!r}; known: {sorted(OPTIONS)}"
            )
        options[name] = _convert(url, name, value)
    return options


def _convert(url: str, name: str, value: Any) -> Any:
    """An option's value in the type redis-py expects; ``ValueError`` names the option."""
    try:
        if name in _FLOAT:
            number = float(value)
            if number <= 0:
                raise ValueError
            return number
        if name in _INT or name == "db":
            if isinstance(value, bool):
                raise ValueError
            number = int(value)
            if number < 0:
                raise ValueError
            return number
        if name in _BOOL:
            if isinstance(value, bool):
                return value
            lowered = str(value).lower()
            if lowered not in ("1", "0", "true", "false", "yes", "no"):
                raise ValueError
            return lowered in ("1", "true", "yes")
        if name == "ssl_cert_reqs":
            if str(value).lower() not in _CERT_REQS:
                raise ValueError
            return str(value).lower()
        if not isinstance(value, str):
            raise ValueError
        return value
    except (TypeError, ValueError):
        raise ValueError(
            f"invalid value {value!r} for Redis option {name!r} ({_safe(url)!r})"
        ) from None


def _seed(url: str, text: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port``; port 6379 when left out) of one seed."""
    text = text.strip()
    if text.startswith("["):
        host, _, port = text[1:].partition("]")
        port = port.removeprefix(":")
    else:
        host, _, port = text.partition(":")
    if not host:
        raise ValueError(f"Redis URL {_safe(url)!r} has an empty host")
    if not port:
        return host, 6379
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"Redis URL {_safe(url)!r} has an invalid port {port!r}")
    return host, int(port)


def _safe(url: str) -> str:
    """The URL without its password, for messages."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, hosts = rest.partition("@")
    if not at or ":" not in userinfo:
        return url
    return f"{scheme}{sep}{userinfo.split(':', 1)[0]}:***@{hosts}"
