"""Helper of tests/test_distributed.py, run under `accelerate launch`: one learner update of a saved model on a
saved global batch; rank 0 writes the updated weights and the step's metrics.

    accelerate launch --config_file configs/accelerate/ddp.yaml tests/distributed_update.py MODEL_DIR BATCH.pt OUT.pt
"""

import sys

import torch
from accelerate import Accelerator

from grpo.learner.update import update
from grpo.model import load
from grpo.train import leave


def main(model_dir: str, batch_path: str, out_path: str) -> None:
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    batch = torch.load(batch_path, weights_only=False)
    model, tokenizer = load(model_dir)
    ref_model = load(model_dir)[0].eval().requires_grad_(False) if batch["loss_kwargs"]["kl_coef"] else None
    optimizer = torch.optim.SGD(model.parameters(), lr=batch["lr"])
    model, optimizer = accelerator.prepare(model, optimizer)
    stats = update(model, optimizer, ref_model, batch["samples"], accelerator=accelerator,
                   pad_id=tokenizer.pad_token_id, **batch["update_kwargs"])
    state = accelerator.get_state_dict(model)  # a collective under FSDP: every rank takes part
    if accelerator.is_main_process:
        state = {k: v.detach().clone() for k, v in state.items()}
        torch.save({"state": state, "stats": stats, "world": accelerator.num_processes,
                    "type": accelerator.distributed_type.name}, out_path)
    accelerator.wait_for_everyone()
    leave(0)  # every rank has done its part and rank 0 has written the result: no interpreter teardown


if __name__ == "__main__":
    main(*sys.argv[1:])
