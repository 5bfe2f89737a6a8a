"""A run's own held-out set, evaluated offline exactly as the run evaluated it during training.

`python -m evals.run --run-dir RUN [--checkpoint final]` reads the run's `config.yaml`, rebuilds its held-out
problems (same data config, task and seed), renders them with the run's prompt template, and calls the function the
training loop calls (grpo/stages/evaluate.py `heldout_accuracy`) under the stage's own plan (`EvalPlan`: its
protocol, greedy or sampled through the run's rollout engine with the run's seed; its evaluation size and token
budget) and the run's verifier settings. The figure therefore equals the run's last `eval/heldout_accuracy` for
that checkpoint.
"""

from __future__ import annotations

from pathlib import Path

from grpo.config import load_config
from grpo.data import environments
from grpo.model import load
from grpo.stages.evaluate import EvalPlan, evaluate_heldout


def evaluate_run(run_dir: Path, checkpoint: str = "final") -> tuple[list[dict], dict]:
    """(samples with verdicts, parameters) of the run's held-out evaluation on `run_dir/checkpoint`."""
    config_path = run_dir / "config.yaml"
    if not config_path.exists():
        raise FileNotFoundError(f"{run_dir}: no config.yaml (not a run directory)")
    config = load_config(config_path, [])
    stage = config.run.stages[-1]
    plan = EvalPlan.of(config, "grpo" if stage == "grpo" else "sft")
    model, tokenizer = load(str(run_dir / checkpoint), config.model.dtype)
    records = environments.heldout(config).records("heldout", seed=config.run.seed)
    samples = evaluate_heldout(model, tokenizer, records, config, plan).last_samples
    protocol = plan.protocol
    params = {"source": str(run_dir / checkpoint), "stage": stage, "eval_size": plan.size,
              "max_new_tokens": plan.max_new_tokens, "decoding": "greedy" if protocol.greedy else "sampled",
              "n": protocol.n, "temperature": protocol.temperature, "top_p": protocol.top_p,
              "engine": config.rollout.engine, "prompt": vars(config.prompt), "seed": config.run.seed}
    return samples, params
