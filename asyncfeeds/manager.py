"""``asyncfeeds.manager``: the fanout ``Manager`` and ``FanoutPriority``."""

from .fanout.manager import FanoutPriority, Manager

__all__ = ["FanoutPriority", "Manager"]
