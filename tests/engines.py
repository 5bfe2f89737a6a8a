"""The rollout engines a test runs on: transformers always, vLLM where it imports (skipped with the reason)."""

import pytest


def vllm_available() -> bool:
    try:
        from grpo import vllm_engine
    except ImportError:
        return False
    return vllm_engine.available()


ENGINES = pytest.mark.parametrize("engine", ["hf", pytest.param("vllm", marks=pytest.mark.skipif(
    not vllm_available(), reason="vllm does not import here"))])
