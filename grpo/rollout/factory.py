"""`make_engine`: the one place that knows every rollout engine and picks the one `rollout.engine` names."""

from __future__ import annotations

import torch

from grpo.config import RolloutConfig
from grpo.rollout.client import ServerEngine
from grpo.rollout.hf import HFEngine
from grpo.rollout.tools import ToolEngine, ToolSettings
from grpo.rollout.types import RolloutEngine


def make_engine(rollout: RolloutConfig, model, tokenizer) -> RolloutEngine:
    """The engine `rollout.engine` names: hf, vllm, server (grpo/rollout/client.py), or auto (vLLM when it
    imports); with `rollout.tools`, wrapped in the tool loop (grpo/rollout/tools.py)."""
    engine = _engine(rollout, model, tokenizer)
    tools = ToolSettings.of(rollout)
    if tools is None:
        return engine
    try:
        return ToolEngine(engine, tokenizer, tools)
    except BaseException:
        engine.close()
        raise


def _engine(rollout: RolloutConfig, model, tokenizer) -> RolloutEngine:
    if rollout.engine not in ("auto", "hf", "vllm", "server"):
        raise ValueError(f"rollout.engine {rollout.engine!r}: must be auto, hf, vllm or server")
    if rollout.engine == "server":
        return ServerEngine(rollout.server_url, model, tokenizer, timeout_s=rollout.server_timeout_s)
    if rollout.engine == "hf":
        return HFEngine(model, tokenizer, batch_size=rollout.batch_size)
    from grpo.rollout import vllm_engine  # imports vllm (heavy, and absent without the cpu/gpu extra)

    if rollout.engine == "auto" and not vllm_engine.available():
        return HFEngine(model, tokenizer, batch_size=rollout.batch_size)
    dtype = str(next(model.parameters()).dtype).removeprefix("torch.")
    settings = vllm_engine.EngineSettings(
        dtype=dtype, max_model_len=rollout.max_model_len or model.config.max_position_embeddings,
        cpu_kv_cache_gib=rollout.vllm_cpu_kv_cache_gib, gpu_memory_utilization=rollout.vllm_gpu_memory_utilization,
        sleep=rollout.vllm_sleep, enforce_eager=rollout.vllm_enforce_eager,
        tensor_parallel_size=rollout.vllm_tensor_parallel_size,
        worker_processes=rollout.vllm_tensor_parallel_size > 1 or _other_processes(),
        start_timeout_s=rollout.vllm_start_timeout_s)
    return vllm_engine.acquire(model, tokenizer, settings)


def check_engine(rollout: RolloutConfig) -> None:
    """Refuse, before anything trains, an engine that cannot start here: `rollout.engine: vllm` without vllm."""
    if rollout.engine != "vllm":
        return
    from grpo.rollout import vllm_engine  # imports vllm (heavy, and absent without the cpu/gpu extra)

    vllm_engine.require()


def _other_processes() -> bool:
    """Is this process one of several in a torch.distributed group (`accelerate launch`)? vLLM started in it would
    build its groups on that one and wait for the others; it then runs the model in a worker process of its own. (A
    group of one, such as an in-process vLLM engine's own, does not count.)"""
    return torch.distributed.is_initialized() and torch.distributed.get_world_size() > 1
