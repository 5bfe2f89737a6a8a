"""The GRPO loop under FSDP (version 2, through accelerate): parameters, gradients and optimizer state are sharded
over the processes, so nothing one process holds is the model.

The main process keeps a full, unsharded copy (the policy's `view`): the rollout engine samples from it (or is synced
from it), held-out evaluation runs on it, and checkpoints save it. After each update every process takes part in
gathering the full weights into that copy. Checkpoints hold the full optimizer state keyed by parameter name
(gathered the same way; one process and DDP key it by index), and a resumed FSDP run shards it again; the model
files are those of any checkpoint.

Every function here is a collective: all processes call it at the same point (grpo/learner/policy.py does).

Not yet run: accelerate runs FSDP only on GPUs (on CPU it starts plain DDP processes, which grpo/learner/team.py
refuses), and its tests (tests/test_distributed.py) skip without 2 GPUs.
"""

from __future__ import annotations

import torch
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict, set_optimizer_state_dict


def full_weights(learner, accelerator) -> dict[str, torch.Tensor]:
    """The learner's full state dict on the main process (CPU tensors); {} on the others."""
    return accelerator.get_state_dict(learner)


def full_optimizer_state(learner, optimizer) -> dict:
    """The optimizer's state, unsharded and keyed by parameter name, on the main process; {} on the others."""
    return get_optimizer_state_dict(learner, optimizer,
                                    options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def load_full_optimizer_state(learner, optimizer, state: dict) -> None:
    """Shard a full optimizer state (from `full_optimizer_state`, read by every process) into `optimizer`."""
    set_optimizer_state_dict(learner, optimizer, optim_state_dict=state,
                             options=StateDictOptions(full_state_dict=True))
