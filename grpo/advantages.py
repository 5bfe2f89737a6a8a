"""Deprecated path, kept for one release (0.1.x) for tools that import it: the advantages are
grpo/algo/advantages.py."""

from grpo.algo.advantages import *  # noqa: F401,F403
from grpo.deprecated import moved

moved("grpo.advantages", "grpo.algo.advantages")
