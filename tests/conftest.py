"""Fixtures shared across test files: built once per test session."""

import os
import tempfile

import pytest

# The tests are written for the CPU (tiny models, CPU tensors as inputs, vLLM's CPU build). On a GPU machine they
# run with the GPUs hidden (models would otherwise be placed on one: grpo.model.run_device), unless
# GRPO_TEST_GPU=1, which the FSDP cases of tests/test_distributed.py need (2 GPUs).
if os.environ.get("GRPO_TEST_GPU") != "1":
    os.environ["CUDA_VISIBLE_DEVICES"] = ""
# the trackers' tests (tests/test_trackers.py) write locally only: W&B offline, Trackio's database in a temporary
# directory (read when trackio is imported, so set before any test imports it)
os.environ["WANDB_MODE"] = "offline"
os.environ["TRACKIO_DIR"] = tempfile.mkdtemp(prefix="trackio-")

from reference_run import BASE  # noqa: E402 (after the GPUs are hidden)

from grpo import train  # noqa: E402


@pytest.fixture(scope="session")
def base(tmp_path_factory):
    """A tiny model after a short cold start (a run's `final/` directory): it writes think blocks and ends its
    turn, so rewards vary within groups and completions stop before the token budget."""
    run_dir = tmp_path_factory.mktemp("sft")
    assert train.main([f"run.dir={run_dir}", *BASE]) == 0  # its metrics are pinned: tests/test_reference_run.py
    return run_dir / "final"
