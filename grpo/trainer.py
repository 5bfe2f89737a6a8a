"""Deprecated path, kept for one release (0.1.x) for tools that import it. The GRPO loop is grpo/stages/grpo.py,
the prompt sampler grpo/stages/rollouts.py, the timer grpo/runs/log.py; import from there."""

import warnings

from grpo.learner.policy import TrainingStopped  # noqa: F401
from grpo.runs.log import Timer  # noqa: F401
from grpo.stages.grpo import CHECKPOINTS, run_grpo  # noqa: F401
from grpo.stages.rollouts import PromptSampler  # noqa: F401

warnings.warn("grpo.trainer moved to grpo.stages.grpo (and rollouts, runs.log); this path goes in the next release",
              DeprecationWarning, stacklevel=2)
