"""The one ``module:attr`` loader of the package (command line, worker start-up).

It is only ever given paths an operator typed or configured; a job payload is
never passed to it, so nothing a queue holds can make a process import code.
"""

from __future__ import annotations

import importlib
from typing import Any


class ImportPathError(ValueError):
    """An import path is malformed, or names a module or attribute that cannot be loaded."""


def import_object(path: str) -> Any:
    """The object at ``module:attr`` (dots allowed on both sides, say ``app.feeds:Cls.attr``).

    Raises ``ImportPathError`` with a one-line message for a malformed path, a
    module that cannot be imported (whatever it raised), or a missing attribute.
    """
    if not isinstance(path, str):
        raise ImportPathError(f"an import path must be a string, got {path!r}")
    module_name, sep, attr_path = path.partition(":")
    if not sep or not module_name or not attr_path:
        raise ImportPathError(
            f"{path!r} is not of the form module:attribute (say myapp.feeds:manager)"
        )
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as error:
        raise ImportPathError(f"cannot import module {module_name!r}: {error}") from error
    except Exception as error:  # the module's own code failed while importing
        raise ImportPathError(
            f"cannot import module {module_name!r}: {type(error).__name__}: {error}"
        ) from error
    for attr in attr_path.split("."):
        try:
            target = getattr(target, attr)
        except AttributeError:
            raise ImportPathError(
                f"module {module_name!r} has no attribute {attr_path!r}"
            ) from None
    return target
