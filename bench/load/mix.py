"""The request mix of a load run: which requests, in which proportions."""

from __future__ import annotations

NAMES = ("feed", "aggregated", "post", "like", "notifications")
DEFAULT = "feed=70,aggregated=10,post=10,like=5,notifications=5"


def parse(raw: str) -> dict[str, int]:
    """``feed=70,post=10,...`` as weights by name; names missing from it weigh 0."""
    mix = dict.fromkeys(NAMES, 0)
    for part in filter(None, (p.strip() for p in raw.split(","))):
        name, _, weight = part.partition("=")
        if name not in mix or not weight.isdigit():
            raise ValueError(f"mix: {part!r} is not one of {', '.join(NAMES)}=<int>")
        mix[name] = int(weight)
    if not any(mix.values()):
        raise ValueError("the mix gives every request a weight of 0")
    return mix
