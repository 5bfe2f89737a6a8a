"""`python -m bench.gpu_check --quick` runs here too: every check that needs no CUDA passes on the CPU, and each one
that does (vLLM's sleep mode, FSDP on 2 GPUs) is skipped by name, so the script a GPU session runs is known to work.
The vLLM and exact-resume checks are skipped here with --skip: their own tests cover them on the CPU."""

import json
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def test_the_gpu_check_runs_and_skips_what_needs_cuda_by_name():
    # vLLM with weight sync and exact resume have their own tests here (tests/test_vllm_engine.py, test_trainer.py)
    done = subprocess.run([sys.executable, "-m", "bench.gpu_check", "--quick", "--skip", "grpo, vLLM;exact resume"],
                          capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    results = {c["check"]: c for c in report["checks"]}
    assert set(results) == {"sft", "grpo, transformers", "grpo, vLLM", "bf16 autocast", "LoRA + KL",
                            "vLLM sleep mode", "exact resume", "FSDP 2"}
    assert not report["missing_packages"]
    for name, check in results.items():
        assert check["result"] in ("pass", "skipped"), (name, check)
    if not torch.cuda.is_available():
        assert results["vLLM sleep mode"]["result"] == "skipped" and "needs CUDA" in results["vLLM sleep mode"]["note"]
        assert results["FSDP 2"]["result"] == "skipped" and results["FSDP 2"]["note"] == "needs 2 GPUs"
        for name in ("sft", "grpo, transformers", "bf16 autocast", "LoRA + KL"):
            assert results[name]["result"] == "pass", (name, results[name])
    for name in ("grpo, vLLM", "exact resume"):
        assert results[name]["result"] == "skipped" and results[name]["note"] == "--skip", (name, results[name])
    assert "| check | result | s/step | seconds | note |" in done.stdout
