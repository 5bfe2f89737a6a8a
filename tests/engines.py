"""The rollout engines a test runs on: transformers always, vLLM where it imports (skipped with the reason)."""

import pytest
import torch

from grpo.rollout import SamplingParams, processed_logprobs


def vllm_available() -> bool:
    try:
        from grpo.rollout import vllm_engine
    except ImportError:
        return False
    return vllm_engine.available()


ENGINES = pytest.mark.parametrize("engine", ["hf", pytest.param("vllm", marks=pytest.mark.skipif(
    not vllm_available(), reason="vllm does not import here"))])


def learner_logprobs(model, group, sampling: SamplingParams) -> list[torch.Tensor]:
    """Per completion, the learner's processed-distribution logprobs of its tokens (one full forward pass)."""
    out = []
    for c in group.completions:
        ids = torch.tensor([group.prompt_ids + c.token_ids])
        with torch.no_grad():
            logits = model(ids).logits[0, len(group.prompt_ids) - 1 : -1]
        out.append(processed_logprobs(logits, sampling).gather(-1, torch.tensor(c.token_ids)[:, None]).squeeze(-1))
    return out
