"""Deprecated path, kept for one release (0.1.x) for tools that import it: the policy loss is grpo/algo/loss.py."""

from grpo.algo.loss import *  # noqa: F401,F403
from grpo.deprecated import moved

moved("grpo.loss", "grpo.algo.loss")
