"""The processes of a run and what each one does: one object, so no other code asks "am I the main process?".

One process (the default) is `ONE`. Under `accelerate launch` (DDP, or FSDP on GPUs) `launch` checks the config's
multi-process rules and starts the `Accelerator`; then the main process samples (unless `rollout.data_parallel` gives
every process its own engine and share), scores, logs, evaluates and writes checkpoints, and every process trains on
its share of the batch (grpo/learner/update.py). The objects a stage builds with its Team (the policy, the rollouts,
the checkpointer; the run log with `enabled=team.is_main`, and the evaluator through it) do nothing where their
process has nothing to do, and call their collectives at the same point on every process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch

from grpo.config import Config, ConfigError
from grpo.config.checks import process_checks


@dataclass(frozen=True)
class Team:
    accelerator: object | None = None  # an accelerate.Accelerator of several processes; None: one process
    data_parallel: bool = False  # rollout.data_parallel on several processes: every process samples its share

    @property
    def world(self) -> int:
        return self.accelerator.num_processes if self.accelerator is not None else 1

    @property
    def rank(self) -> int:
        return self.accelerator.process_index if self.accelerator is not None else 0

    @property
    def is_main(self) -> bool:
        return self.accelerator is None or self.accelerator.is_main_process

    @property
    def runs_engine(self) -> bool:
        """Does this process run a rollout engine?"""
        return self.is_main or self.data_parallel

    @property
    def sharded(self) -> bool:
        """FSDP: no process holds the whole learner (grpo/learner/sharded.py)."""
        return self.accelerator is not None and self.accelerator.distributed_type.name == "FSDP"

    def gather(self, item) -> list:
        """Every process's `item`, in rank order, on every process (a collective); [item] in one process."""
        if self.world == 1:
            return [item]
        from accelerate.utils import gather_object  # accelerate: only runs on several processes import it

        return gather_object([item])

    def broadcast(self, item):
        """The main process's `item` on every process (a collective; the others pass anything, e.g. None)."""
        if self.world == 1:
            return item
        from accelerate.utils import broadcast_object_list  # accelerate: only runs on several processes import it

        box = [item]
        broadcast_object_list(box, from_process=0)
        return box[0]


ONE = Team()


def launch(config: Config) -> Team:
    """The run's processes: `ONE`, or (under `accelerate launch`) an Accelerator after the multi-process rules."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return ONE
    fsdp = os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true"  # set by the launcher for an FSDP config
    process_checks(config, world, fsdp)
    from accelerate import Accelerator  # accelerate: one-process runs never import it
    from accelerate.utils import InitProcessGroupKwargs

    accelerator = Accelerator(cpu=not torch.cuda.is_available(), kwargs_handlers=[InitProcessGroupKwargs(
        timeout=timedelta(seconds=config.run.collective_timeout_s))])
    kind = accelerator.distributed_type.name
    if fsdp and kind != "FSDP":
        raise ConfigError(f"an FSDP accelerate config, but accelerate started {kind} processes: FSDP runs only on GPUs "
                          "(or other accelerators); on CPU use configs/accelerate/ddp.yaml")
    if kind not in ("MULTI_CPU", "MULTI_GPU", "FSDP"):
        raise ConfigError(f"the GRPO trainer runs on DDP or FSDP (configs/accelerate/ddp.yaml, fsdp.yaml); "
                          f"accelerate's {kind} is not supported")
    return Team(accelerator, data_parallel=config.rollout.data_parallel)
