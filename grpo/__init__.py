"""GRPO learner, rollout engines and the training loop (`python -m grpo.train`)."""
