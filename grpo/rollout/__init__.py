"""Rollout engines: G sampled completions per prompt with token ids and sampling logprobs, and the learner's weights
synced into them. The protocol and records (types.py), the transformers engine (hf.py), vLLM in this process
(vllm_engine.py, the only module that imports vllm; vllm_worker.py runs in its tensor-parallel workers), a vLLM
server in another process (server.py: `python -m grpo.serve`; client.py: its trainer side), and the factory that
picks one (factory.py). Imports the config and the model helpers; nothing of the learner or the stages.

`from grpo.rollout import HFEngine, SamplingParams, make_engine, ...` keeps working: the names below are re-exported.
"""

from grpo.rollout.factory import make_engine
from grpo.rollout.hf import HFEngine, processed_logprobs
from grpo.rollout.types import (
    Completion,
    EngineError,
    EngineUnavailable,
    Group,
    RolloutEngine,
    SamplingParams,
    context_overflow,
    stop_token_ids,
    with_tied_head,
)

__all__ = ["Completion", "EngineError", "EngineUnavailable", "Group", "HFEngine", "RolloutEngine", "SamplingParams",
           "context_overflow", "make_engine", "processed_logprobs", "stop_token_ids", "with_tied_head"]
