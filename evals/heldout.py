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
from grpo.data.prompts import to_examples
from grpo.data.records import load_heldout
from grpo.model import load
from grpo.rollout import make_engine
from grpo.stages.evaluate import EvalPlan, heldout_accuracy
from grpo.stages.judge import Judge


def evaluate_run(run_dir: Path, checkpoint: str = "final") -> tuple[list[dict], dict]:
    """(samples with verdicts, parameters) of the run's held-out evaluation on `run_dir/checkpoint`."""
    config_path = run_dir / "config.yaml"
    if not config_path.exists():
        raise FileNotFoundError(f"{run_dir}: no config.yaml (not a run directory)")
    config = load_config(config_path, [])
    stage = config.run.stages[-1]
    plan = EvalPlan.of(config, "grpo" if stage == "grpo" else "sft")
    records = load_heldout(config)
    model, tokenizer = load(str(run_dir / checkpoint), config.model.dtype)
    examples = to_examples(records, tokenizer, config.prompt)[: plan.size]
    engine = None if plan.protocol.greedy else make_engine(config.rollout, model, tokenizer)  # as in training
    try:
        _, samples = heldout_accuracy(model, tokenizer, examples, max_new_tokens=plan.max_new_tokens,
                                      judge=Judge.of(config.reward, config.prompt), protocol=plan.protocol,
                                      engine=engine)
    finally:
        if engine is not None:
            engine.close()
    protocol = plan.protocol
    params = {"source": str(run_dir / checkpoint), "stage": stage, "eval_size": plan.size,
              "max_new_tokens": plan.max_new_tokens, "decoding": "greedy" if protocol.greedy else "sampled",
              "n": protocol.n, "temperature": protocol.temperature, "top_p": protocol.top_p,
              "engine": config.rollout.engine, "prompt": vars(config.prompt), "seed": config.run.seed}
    return samples, params
