"""Deprecated path, kept for one release (0.1.x) for tools that import it: the advantages are
grpo/algo/advantages.py."""

import warnings

from grpo.algo.advantages import *  # noqa: F401,F403

warnings.warn("grpo.advantages moved to grpo.algo.advantages; this path goes in the next release", DeprecationWarning,
              stacklevel=2)
