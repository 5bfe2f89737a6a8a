"""A verifiable-reward GRPO trainer: `python -m grpo.train` (train.py) runs a recipe's stages (pipeline.py, stages/)
with the learner (learner/), rollout engines (rollout/), the run directory (runs/), data and prompts (data/), typed
config (config/) and the pure math (algo/). README.md's "Files" section maps every module."""
