"""Warnings for module paths that moved: the old path still imports for one release and says where the code is."""

from __future__ import annotations

import warnings


def moved(old: str, new: str) -> None:
    """Warn (DeprecationWarning) that module `old`, which calls this at import, moved to `new`. The warning points at
    the line that imported `old`: stacklevel 3 is that line (1 is here, 2 the old module), as warnings skips
    importlib's own frames."""
    warnings.warn(f"{old} moved to {new}; this path goes in the next release", DeprecationWarning, stacklevel=3)
