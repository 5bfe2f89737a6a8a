"""Deprecated path, kept for one release (0.1.x) for tools that import it: the policy loss is grpo/algo/loss.py."""

import warnings

from grpo.algo.loss import *  # noqa: F401,F403

warnings.warn("grpo.loss moved to grpo.algo.loss; this path goes in the next release", DeprecationWarning,
              stacklevel=2)
