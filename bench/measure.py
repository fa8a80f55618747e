"""Memory measurements: the client process's resident set and Redis's ``used_memory``.

Library neutral (procfs and redis-cli only), so the same code measures every driver.
"""

from __future__ import annotations

import subprocess

MIB = 1024 * 1024


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def rss_mb() -> float:
    """The process's resident set now, in MiB."""
    return _status_kb("VmRSS") / 1024


def peak_rss_mb() -> float:
    """The process's peak resident set (VmHWM) since start or the last ``reset_peak``, in MiB."""
    return _status_kb("VmHWM") / 1024


def reset_peak() -> bool:
    """Restart peak tracking at the current resident set (Linux ``clear_refs`` 5)."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    return True


def redis_info(port: int, section: str = "memory", host: str = "127.0.0.1") -> dict[str, str]:
    """``INFO <section>`` of the Redis on ``host:port`` as a dict of strings."""
    out = subprocess.run(
        ["redis-cli", "-h", host, "-p", str(port), "INFO", section],
        check=True, capture_output=True, text=True,
    ).stdout
    pairs = (line.split(":", 1) for line in out.splitlines() if ":" in line)
    return {key.strip(): value.strip() for key, value in pairs}


def redis_used_memory_mb(port: int, host: str = "127.0.0.1") -> float:
    """Redis ``used_memory`` in MiB."""
    return int(redis_info(port, "memory", host)["used_memory"]) / MIB


def redis_data_bytes(port: int, host: str = "127.0.0.1") -> int:
    """``used_memory`` less what clients' buffers and the Lua script cache take, in bytes.

    Deltas of this between two moments are what the keys written in between cost; a
    library loading its scripts, or a client's reply buffer, does not count.
    """
    info = redis_info(port, "memory", host)
    extra = sum(int(info.get(field, 0)) for field in ("mem_clients_normal",
                                                      "used_memory_scripts_eval"))
    return int(info["used_memory"]) - extra


def redis_keys_bytes(port: int, host: str = "127.0.0.1") -> int:
    """The sum of ``MEMORY USAGE <key> SAMPLES 0`` over every key: what the keys take by
    Redis's own account, independent of the allocator's history (a cross-check of
    ``redis_data_bytes``; it leaves out the keyspace's hash table)."""
    cli = ["redis-cli", "-h", host, "-p", str(port)]
    keys = subprocess.run([*cli, "--scan"], check=True, capture_output=True,
                          text=True).stdout.split()
    if not keys:
        return 0
    commands = "".join(f"MEMORY USAGE {key} SAMPLES 0\n" for key in keys)
    out = subprocess.run(cli, input=commands, check=True, capture_output=True, text=True).stdout
    return sum(int(word) for word in out.split() if word.isdigit())


def loadavg() -> list[str]:
    """The 1, 5 and 15 minute load averages."""
    with open("/proc/loadavg") as load:
        return load.read().split()[:3]
