"""What works on this machine's accelerator, in minutes: `python -m bench.gpu_check [--quick] [--out DIR]
[--skip CHECK,...]`.

Each check is a real `python -m grpo.train` run (or `accelerate launch`) of the tiny model, read back from its
metrics.jsonl and summary.json:

    sft                  the cold start on the device (transformers)
    grpo, transformers   GRPO from the cold start, the transformers engine sampling on the device
    grpo, vLLM           GRPO with the vLLM engine: after each weight sync it samples with the learner's logprobs
    bf16 autocast        model.mixed_precision=bf16: no non-finite step, fp32 weights that move
    LoRA + KL            grpo.lora.rank=8 with a KL reference: only adapters train, final/ is merged
    exact resume         a run stopped after its step-2 checkpoint and resumed ends where an uninterrupted one ends
    vLLM sleep mode      rollout.vllm_sleep=true (CUDA only)
    FSDP 2               accelerate launch with configs/accelerate/fsdp.yaml on 2 GPUs (2 GPUs only)

A check that needs what this machine lacks (CUDA, a second GPU, vllm) is skipped by name, so the script runs, and is
tested (tests/test_gpu_check.py, --quick), on a CPU machine too; `--skip "grpo, vLLM;exact resume"` (names joined by ;)
skips checks by name (the CPU test skips the two that other tests cover there, to save CI minutes). It prints the packages it needs beyond a stock
PyTorch image and which are missing, one table (check, result, seconds per training step, wall seconds, note) and,
as its last line, one JSON object with the same.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# beyond torch: what `pip install -e .` brings (vllm only with the gpu extra; bubblewrap only for code tasks)
NEEDED = ["transformers", "tokenizers", "accelerate", "peft", "datasets", "sympy", "math_verify", "yaml", "tqdm",
          "matplotlib", "huggingface_hub"]
OPTIONAL = ["vllm"]


def _cuda() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _train(run_dir: Path, *args: str, launch: list[str] | None = None) -> tuple[bool, str]:
    """`python -m grpo.train run.dir=RUN_DIR ARGS` (or under `launch`): (finished, its last line of stderr)."""
    command = [*(launch or [sys.executable, "-m"]), "grpo.train", *args]
    if "--resume" not in args:
        command += [f"run.dir={run_dir}", "run.overwrite=true"]  # --out DIR reused: the check's own runs are replaced
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    return done.returncode == 0, (done.stderr.strip().splitlines() or [""])[-1][:200]


def _steps(run_dir: Path, stage: str) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return [r for r in rows if r["stage"] == stage and ("loss/sft" in r or "reward/mean" in r)]


def _per_step(rows: list[dict]) -> float | None:
    times = [r["perf/step_s"] for r in rows[1:] if "perf/step_s" in r]  # the first step carries start-up costs
    return round(sum(times) / len(times), 3) if times else None


def checks(out: Path, quick: bool, skip: frozenset[str] = frozenset()) -> list[dict]:
    gpus, has_vllm = _cuda(), importlib.util.find_spec("vllm") is not None
    sft_steps, grpo_steps = ("40", "3") if quick else ("300", "10")
    small = ["task.train_size=2000", "task.heldout_size=16", "grpo.eval_size=16", "grpo.eval_every=0",
             "grpo.warmup_steps=0", "grpo.prompts_per_step=8", "grpo.group_size=4", "rollout.max_new_tokens=48",
             f"grpo.steps={grpo_steps}", "reward.format_weight=0.5", "grpo.lr=1e-4"]
    results: list[dict] = []

    def record(name: str, ok: bool | None, start: float, note: str = "", per_step: float | None = None) -> None:
        results.append({"check": name, "result": {True: "pass", False: "FAIL", None: "skipped"}[ok],
                        "s_per_step": per_step, "seconds": round(time.monotonic() - start, 1), "note": note})

    start, sft = time.monotonic(), out / "sft"
    ok, tail = _train(sft, "run.stages=[sft]", f"sft.steps={sft_steps}", "sft.eval_every=0", "sft.eval_size=16",
                      "task.train_size=2000", "task.heldout_size=16")
    seconds = json.loads((sft / "summary.json").read_text())["stages"]["sft"]["seconds"] if ok else None
    record("sft", ok, start, tail if not ok else f"on {'cuda' if gpus else 'cpu'}",
           round(seconds / int(sft_steps), 3) if ok else None)
    base = sft / "final"
    if not ok:
        return results
    for name, folder, extra, needs in (
            ("grpo, transformers", "hf", ["rollout.engine=hf"], None),
            ("grpo, vLLM", "vllm", ["rollout.engine=vllm"], None if has_vllm else "vllm does not import"),
            ("bf16 autocast", "bf16", ["rollout.engine=hf", "model.mixed_precision=bf16"], None),
            ("LoRA + KL", "lora", ["rollout.engine=hf", "grpo.lora.rank=8", "grpo.kl_coef=0.05", "grpo.lr=1e-3"],
             None),
            ("vLLM sleep mode", "sleep", ["rollout.engine=vllm", "rollout.vllm_sleep=true"],
             None if gpus and has_vllm else "needs CUDA and vllm")):
        start, run = time.monotonic(), out / folder
        needs = "--skip" if name in skip else needs
        if needs:
            record(name, None, start, needs)
            continue
        ok, tail = _train(run, "run.stages=[grpo]", f"model.path={base}", *small, *extra)
        rows = _steps(run, "grpo")
        gap = max((r.get("rollout/logprob_gap", 0.0) for r in rows), default=0.0)
        skipped = int(sum(r.get("optim/skipped_nonfinite", 0) for r in rows))
        good = ok and len(rows) == int(grpo_steps) and skipped == 0 and (
            gap < (0.05 if "bf16" in name else 1e-3) or "vLLM" not in name)
        record(name, good, start, tail if not ok else f"logprob gap {gap:.1e}, non-finite steps {skipped}",
               _per_step(rows))
    if "exact resume" in skip:
        record("exact resume", None, time.monotonic(), "--skip")
    else:
        results.append(_resume(out, base, small))
    start = time.monotonic()
    if gpus < 2:
        record("FSDP 2", None, start, "needs 2 GPUs")
    else:
        launch = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
                  str(ROOT / "configs/accelerate/fsdp.yaml"), "--num_processes", "2", "-m"]
        run = out / "fsdp"
        ok, tail = _train(run, "run.stages=[grpo]", f"model.path={base}", *small, "rollout.engine=hf", launch=launch)
        rows = _steps(run, "grpo")
        record("FSDP 2", ok and all("perf/gather_s" in r for r in rows), start, tail, _per_step(rows))
    return results


def _resume(out: Path, base: Path, small: list[str]) -> dict:
    """Straight 4 steps, against 3 steps with a checkpoint after step 2, resumed to 4 from that checkpoint."""
    start, straight, stopped = time.monotonic(), out / "straight", out / "stopped"
    args = ["run.stages=[grpo]", f"model.path={base}", *small, "rollout.engine=hf", "grpo.save_every=2"]
    ok_a, tail = _train(straight, *args, "grpo.steps=4")
    ok_b, tail_b = _train(stopped, *args, "grpo.steps=3")  # constant learning rate: the same schedule as 4 steps
    if ok_b:  # as if killed after step 3: the final model and summary gone, the step-2 checkpoint kept
        shutil.rmtree(stopped / "final")
        (stopped / "summary.json").unlink()
        ok_b, tail_b = _train(stopped, "--resume", str(stopped), "grpo.steps=4")
    note, good = tail or tail_b, ok_a and ok_b
    if good:
        from safetensors.torch import load_file

        a, b = load_file(str(straight / "final/model.safetensors")), load_file(str(stopped / "final/model.safetensors"))
        diff = max(float((a[k] - b[k]).abs().max()) for k in a)
        same_lines = [{k: v for k, v in r.items() if not k.startswith("perf/")} for r in _steps(straight, "grpo")] == \
                     [{k: v for k, v in r.items() if not k.startswith("perf/")} for r in _steps(stopped, "grpo")]
        good, note = diff == 0 and same_lines, f"max weight difference {diff:.1e}, metrics equal: {same_lines}"
    return {"check": "exact resume", "result": "pass" if good else "FAIL", "s_per_step": None,
            "seconds": round(time.monotonic() - start, 1), "note": note}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps (the CPU test's setting)")
    parser.add_argument("--out", help="where the runs go (default: a temporary directory, removed)")
    parser.add_argument("--skip", default="", help="checks not to run, by name, joined by ';'")
    args = parser.parse_args()
    import torch

    missing = [m for m in NEEDED if importlib.util.find_spec(m) is None]
    gpus = _cuda()
    device = f"{gpus} x {torch.cuda.get_device_name(0)}" if gpus else "no CUDA device (CPU)"
    print(f"device: {device}; torch {torch.__version__}")
    print(f"packages beyond torch: {', '.join(NEEDED)} (optional: {', '.join(OPTIONAL)}); "
          f"missing: {', '.join(missing) or 'none'}; vllm: "
          f"{'imports' if importlib.util.find_spec('vllm') else 'not installed'}")
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        results = checks(Path(args.out or tmp), args.quick, frozenset(n.strip() for n in args.skip.split(";") if n))
    print("\n| check | result | s/step | seconds | note |\n|---|---|---:|---:|---|")
    for r in results:
        print(f"| {r['check']} | {r['result']} | {r['s_per_step'] or ''} | {r['seconds']} | {r['note']} |")
    print(json.dumps({"device": device, "missing_packages": missing, "checks": results}))


if __name__ == "__main__":
    main()
