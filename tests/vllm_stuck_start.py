"""Helper of tests/test_distributed.py, run under `accelerate launch` with 2 processes: the main process starts an
in-process vLLM engine the old way (in this process, not in a worker process of its own) while the other process
never joins vLLM's groups, so the start waits forever in a collective; the start deadline must end it with a message.

    accelerate launch --config_file configs/accelerate/ddp.yaml tests/vllm_stuck_start.py SECONDS
"""

import os
import sys
import time

import torch
from accelerate import Accelerator

from grpo.model import build_model, build_tokenizer
from grpo.rollout import vllm_engine
from grpo.rollout.types import EngineUnavailable


def main(seconds: float) -> None:
    accelerator = Accelerator(cpu=not torch.cuda.is_available())  # the trainer's process group, as grpo.train's
    if not accelerator.is_main_process:
        time.sleep(600)  # never joins: torchrun ends this process when the main one exits
        return
    tokenizer = build_tokenizer()
    settings = vllm_engine.EngineSettings(cpu_kv_cache_gib=0.25, worker_processes=False, start_timeout_s=seconds)
    start = time.monotonic()
    try:
        vllm_engine.acquire(build_model("tiny", tokenizer), tokenizer, settings)
    except EngineUnavailable as e:
        print(f"REFUSED after {time.monotonic() - start:.0f} s: {e}", flush=True)
        os._exit(3)  # the start thread is stuck in a collective: nothing to wait for
    print("STARTED", flush=True)
    os._exit(0)


if __name__ == "__main__":
    main(float(sys.argv[1]))
