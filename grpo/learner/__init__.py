"""The learner: the policy and everything tied to it (policy.py: model, optimizer, schedule, reference, LoRA,
sharding, the non-finite guard), how it updates (update.py: GRPO's policy-gradient passes; supervised.py: SFT's
cross-entropy step), the optimizer and schedule (optim.py), LoRA (lora.py), FSDP (sharded.py) and the run's
processes (team.py). Imports the pure math, the config and the model helpers; nothing of the engines, the run
directory or the stages."""
