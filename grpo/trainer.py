"""Deprecated path, kept for one release (0.1.x) for tools that import it. The GRPO loop is grpo/stages/grpo.py (its
`run_grpo` now takes the run's verifier settings, `judge`, and held-out plan, `plan`), the prompt sampler
grpo/stages/rollouts.py, the timer grpo/runs/log.py; import from there."""

from grpo.deprecated import moved
from grpo.learner.policy import TrainingStopped  # noqa: F401
from grpo.runs.log import Timer  # noqa: F401
from grpo.stages.grpo import CHECKPOINTS, run_grpo  # noqa: F401
from grpo.stages.rollouts import PromptSampler  # noqa: F401

moved("grpo.trainer", "grpo.stages.grpo (and grpo.stages.rollouts, grpo.runs.log)")
