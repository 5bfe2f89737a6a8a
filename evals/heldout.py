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


def trained_by(run_dir: Path, checkpoint: str, stages: list[str]) -> str:
    """The stage (sft or grpo) whose model `checkpoint` is, so it is measured under that stage's plan:
    `checkpoints/<stage>/step_N` says so in its path; `final` is the last of sft and grpo the run has (its
    trainer_state.pt names it)."""
    parts = Path(checkpoint).parts
    if len(parts) >= 2 and parts[-2] in ("sft", "grpo"):
        return parts[-2]
    state_path = run_dir / checkpoint / "trainer_state.pt"
    if state_path.exists():
        import torch

        stage = torch.load(state_path, weights_only=False, map_location="cpu", mmap=True).get("stage")
        if stage in ("sft", "grpo"):
            return stage
    trained = [s for s in stages if s in ("sft", "grpo")]
    return trained[-1] if trained else "sft"


def evaluate_run(run_dir: Path, checkpoint: str = "final") -> tuple[list[dict], dict]:
    """(samples with verdicts, parameters) of the run's held-out evaluation on `run_dir/checkpoint`."""
    config_path = run_dir / "config.yaml"
    if not config_path.exists():
        raise FileNotFoundError(f"{run_dir}: no config.yaml (not a run directory)")
    config = load_config(config_path, [])
    stage = trained_by(run_dir, checkpoint, config.run.stages)
    plan = EvalPlan.of(config, stage)
    model, tokenizer = load(str(run_dir / checkpoint), config.model.dtype)
    records = environments.heldout(config).records("heldout", seed=config.run.seed)
    samples = evaluate_heldout(model, tokenizer, records, config, plan).last_samples
    protocol = plan.protocol
    params = {"source": str(run_dir / checkpoint), "stage": stage, "eval_size": plan.size,
              "max_new_tokens": plan.max_new_tokens, "decoding": "greedy" if protocol.greedy else "sampled",
              "n": protocol.n, "temperature": protocol.temperature, "top_p": protocol.top_p,
              "engine": config.rollout.engine, "prompt": vars(config.prompt), "seed": config.run.seed}
    return samples, params
