"""Cassandra connection options: checked and completed before any connection is made.

``check`` turns a ``configure(cassandra={name: {...}})`` entry (or the
``ASYNCFEEDS_CASSANDRA_*`` variables) into complete, typed options and raises
``ValueError`` on anything that cannot work. ``consistency_problems`` names the
combinations of consistency and replication that work until a node goes down.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from typing import Any

DEFAULTS: dict[str, Any] = {
    "hosts": ["127.0.0.1"],
    "port": 9042,
    "keyspace": "asyncfeeds",
    "consistency": "LOCAL_QUORUM",
}
OPTIONAL = (
    "replication",
    "connect_timeout",
    "request_timeout",
    "username",
    "password",
    "ssl",
    "ssl_ca_certs",
    "ssl_certfile",
    "ssl_keyfile",
    "ssl_verify",
)
OPTIONS = frozenset((*DEFAULTS, *OPTIONAL))
ENV_PREFIX = "ASYNCFEEDS_CASSANDRA_"
"""Every option has a variable: ``ASYNCFEEDS_CASSANDRA_`` + its name in capitals."""

CONSISTENCIES = ("ONE", "TWO", "THREE", "QUORUM", "ALL", "LOCAL_QUORUM", "EACH_QUORUM", "LOCAL_ONE")
"""Levels a feed can read and write at (ANY, SERIAL and LOCAL_SERIAL cannot do both)."""
SSL_VERIFY = {"none": "NONE", "cert": "PEER_CERT", "identity": "PEER_IDENTITY"}
_SSL_FILES = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


class ConsistencyWarning(UserWarning):
    """A Cassandra consistency and replication that work only while every replica is up."""


def from_environment() -> dict[str, Any]:
    """The options set by ``ASYNCFEEDS_CASSANDRA_*`` variables (strings, converted by ``check``)."""
    found = {}
    for name in OPTIONS - {"replication"}:
        value = os.environ.get(ENV_PREFIX + name.upper())
        if value:
            found[name] = value
    return found


def check(name: str, options: Mapping[str, Any], source: str = "configure") -> dict[str, Any]:
    """Complete, typed options of cluster ``name``; ``ValueError`` names what is wrong."""
    unknown = set(options) - OPTIONS
    if unknown:
        raise ValueError(
            f"unknown cassandra options for {name!r}: {sorted(unknown)}; known: {sorted(OPTIONS)}"
        )
    where = f"cassandra cluster {name!r} ({source})"
    result = dict(DEFAULTS)
    result.update(options)
    hosts = result["hosts"]
    if isinstance(hosts, str):
        hosts = [h.strip() for h in hosts.split(",") if h.strip()]
    if (
        not isinstance(hosts, list | tuple)
        or not hosts
        or not all(isinstance(h, str) and h for h in hosts)
    ):
        raise ValueError(f"{where} needs a list of host names, got {result['hosts']!r}")
    result["hosts"] = list(hosts)
    result["port"] = _port(where, result["port"])
    consistency = str(result["consistency"]).upper()
    if consistency not in CONSISTENCIES:
        raise ValueError(
            f"{where}: consistency {result['consistency']!r} cannot both read and write; "
            f"use one of {list(CONSISTENCIES)}"
        )
    result["consistency"] = consistency
    for key in ("connect_timeout", "request_timeout"):
        if key in result:
            result[key] = _seconds(where, key, result[key])
    for key in ("username", "password"):
        if key in result and not isinstance(result[key], str):
            raise ValueError(f"{where}: {key} must be a string")
    if ("username" in result) != ("password" in result):
        raise ValueError(f"{where}: give both username and password")
    _check_tls(where, result)
    return result


def _port(where: str, value: Any) -> int:
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
        raise ValueError(f"{where} has an invalid port {value!r}")
    return value


def _seconds(where: str, key: str, value: Any) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = 0.0
    if isinstance(value, bool) or not 0 < seconds <= 600:
        raise ValueError(f"{where}: {key} must be a number of seconds, got {value!r}")
    return seconds


def _flag(where: str, key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if str(value).lower() in _TRUE:
        return True
    if str(value).lower() in _FALSE:
        return False
    raise ValueError(f"{where}: {key} must be true or false, got {value!r}")


def _check_tls(where: str, result: dict[str, Any]) -> None:
    """TLS is on when ``ssl`` is true or a certificate file is given; files must be readable."""
    for key in _SSL_FILES:
        if key in result:
            path = result[key]
            if not isinstance(path, str) or not os.path.isfile(path):
                raise ValueError(f"{where}: {key} {path!r} is not a readable file")
            if not os.access(path, os.R_OK):
                raise ValueError(f"{where}: {key} {path!r} cannot be read")
    if ("ssl_certfile" in result) != ("ssl_keyfile" in result):
        raise ValueError(f"{where}: a client certificate needs both ssl_certfile and ssl_keyfile")
    given = any(key in result for key in _SSL_FILES)
    result["ssl"] = _flag(where, "ssl", result.get("ssl", given)) or given
    if not result["ssl"]:
        if "ssl_verify" in result:
            raise ValueError(f"{where}: ssl_verify needs TLS (ssl=True or ssl_ca_certs)")
        return
    verify = result.get("ssl_verify", "cert")
    if isinstance(verify, bool) or str(verify).lower() in (*_TRUE, *_FALSE):
        verify = "cert" if _flag(where, "ssl_verify", verify) else "none"
    verify = str(verify).lower()
    if verify not in SSL_VERIFY:
        raise ValueError(
            f"{where}: ssl_verify must be true, false or one of {sorted(SSL_VERIFY)}, "
            f"got {result['ssl_verify']!r}"
        )
    if verify != "none" and "ssl_ca_certs" not in result:
        raise ValueError(
            f"{where}: verifying the server's certificate needs ssl_ca_certs (the CA file), "
            f"or ssl_verify=False"
        )
    result["ssl_verify"] = verify


def replication_factors(replication: Any) -> list[int]:
    """The replication factor of each data centre of a replication setting."""
    if not isinstance(replication, Mapping):
        return [1]  # the keyspace asyncfeeds creates by default
    if str(replication.get("class", "")).endswith("SimpleStrategy"):
        keys = ["replication_factor"]
    else:
        keys = [key for key in replication if key != "class"]
    return [int(replication[k]) for k in keys if str(replication.get(k, "")).isdigit()]


def consistency_problems(options: Mapping[str, Any]) -> list[str]:
    """Why this consistency and replication stop working when one replica is down (or at all)."""
    consistency = str(options.get("consistency", DEFAULTS["consistency"])).upper()
    problems = []
    for rf in sorted(set(replication_factors(options.get("replication")))):
        needed = {"ONE": 1, "LOCAL_ONE": 1, "TWO": 2, "THREE": 3, "ALL": rf}.get(
            consistency, rf // 2 + 1
        )
        if needed > rf:
            problems.append(
                f"consistency {consistency} needs {needed} replicas but the replication "
                f"factor is {rf}: every request fails"
            )
            continue
        if rf > 1 and needed == rf:
            problems.append(
                f"consistency {consistency} with replication factor {rf} needs every replica: "
                f"reads and writes fail while one node is down (use replication factor 3 "
                f"with QUORUM/LOCAL_QUORUM, or ONE)"
            )
        if rf == 2:
            problems.append(
                "aggregated and notification feeds write with lightweight transactions, whose "
                "Paxos rounds need a quorum of replicas (2 of 2 with replication factor 2) at "
                "any consistency: their writes fail while one node is down (use replication "
                "factor 3)"
            )
    return problems


def warn_about(name: str, options: Mapping[str, Any]) -> None:
    """``ConsistencyWarning`` for each problem ``consistency_problems`` finds."""
    for problem in dict.fromkeys(consistency_problems(options)):
        warnings.warn(f"cassandra cluster {name!r}: {problem}", ConsistencyWarning, stacklevel=3)
