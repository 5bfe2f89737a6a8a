"""What the terminal shows: third-party start-up noise goes to <run dir>/logs/third_party.log, errors still reach
the terminal, and run.verbose (or vLLM's own logging settings) brings the noise back. Subprocesses: the logging
setup is per process, as a user's run is."""

import os
import subprocess
import sys

import pytest
from engines import vllm_available
from test_trainer import SMALL

from grpo.runs.console import user_asked

NOISE = ("WARNING", "FutureWarning", "LD_PRELOAD", "Triton", "NUMA", "Loading safetensors", "Writing model shards")


def train(run_dir, base, *extra, env=None):
    args = [sys.executable, "-m", "grpo.train", f"run.dir={run_dir}", "run.stages=[grpo]", f"model.path={base}",
            "grpo.steps=2", "rollout.engine=vllm", *SMALL, *extra]
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("VLLM_LOGGING", "VLLM_CONFIGURE", "GRPO_"))}
    return subprocess.run(args, capture_output=True, text=True, timeout=600, env={**clean, **(env or {})})


@pytest.mark.skipif(not vllm_available(), reason="vllm does not import here")
def test_a_vllm_run_keeps_third_party_noise_in_its_log_and_verbose_brings_it_back(tmp_path, base):
    quiet = train(tmp_path / "quiet", base)
    assert quiet.returncode == 0, quiet.stderr[-2000:]
    shown = quiet.stdout + quiet.stderr
    assert not [n for n in NOISE if n in shown], shown[-3000:]
    assert "done in" in quiet.stdout and "grpo: held-out accuracy" in quiet.stdout
    log = (tmp_path / "quiet" / "logs" / "third_party.log").read_text()
    assert "WARNING vllm." in log and "LD_PRELOAD" in log  # vLLM's start-up warnings, kept for whoever needs them

    loud = train(tmp_path / "loud", base, "run.verbose=true")
    assert loud.returncode == 0, loud.stderr[-2000:]
    assert "WARNING" in loud.stdout + loud.stderr and not (tmp_path / "loud" / "logs").exists()


def test_errors_still_reach_the_terminal(tmp_path):
    code = ("import logging, warnings; from pathlib import Path; from grpo.runs.console import quiet; "
            f"quiet(Path({str(tmp_path)!r})); "
            "logging.getLogger('vllm.engine').warning('a start-up warning'); "
            "logging.getLogger('transformers.x').error('a real error'); "
            "warnings.warn('a deprecation notice', FutureWarning)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "a real error" in done.stderr and "start-up warning" not in done.stderr + done.stdout
    assert "deprecation notice" not in done.stderr
    log = (tmp_path / "logs" / "third_party.log").read_text()
    assert all(text in log for text in ("a start-up warning", "a real error", "a deprecation notice"))


def test_vllm_logging_set_by_the_user_counts_and_ours_does_not():
    assert user_asked({"VLLM_LOGGING_LEVEL": "INFO"})
    assert not user_asked({"VLLM_LOGGING_LEVEL": "WARNING", "GRPO_VLLM_LEVEL_DEFAULTED": "1"})
    assert not user_asked({"VLLM_LOGGING_CONFIG_PATH": "x.json", "GRPO_THIRD_PARTY_LOG": "y.log"})
    assert user_asked({"VLLM_LOGGING_CONFIG_PATH": "mine.json"}) and user_asked({"VLLM_CONFIGURE_LOGGING": "0"})
    assert not user_asked({})
