"""A run's own held-out set, evaluated offline exactly as the run evaluated it during training.

`python -m evals.run --run-dir RUN [--checkpoint final]` reads the run's `config.yaml`, rebuilds its held-out
problems (same data config, task and seed), renders them with the run's prompt template, and calls the very
function the training loop calls (`grpo.evaluate.heldout_accuracy`: the stage's protocol, greedy or sampled
through the run's rollout engine with the run's seed; its evaluation size and token budget; the math
verifier). The figure therefore equals the run's last `eval/heldout_accuracy` for that checkpoint.
"""

from __future__ import annotations

from pathlib import Path

from grpo.config import grpo_eval_tokens, load_config
from grpo.data import load_heldout, to_examples
from grpo.evaluate import GREEDY, heldout_accuracy
from grpo.model import load
from grpo.trainer import eval_protocol


def evaluate_run(run_dir: Path, checkpoint: str = "final") -> tuple[list[dict], dict]:
    """(samples with verdicts, parameters) of the run's held-out evaluation on `run_dir/checkpoint`."""
    config_path = run_dir / "config.yaml"
    if not config_path.exists():
        raise FileNotFoundError(f"{run_dir}: no config.yaml (not a run directory)")
    config = load_config(config_path, [])
    stage = config.run.stages[-1]
    if stage == "grpo":
        size, tokens = config.grpo.eval_size, grpo_eval_tokens(config.grpo, config.rollout)
    else:
        size, tokens = config.sft.eval_size, config.sft.max_new_tokens
    records = load_heldout(config)
    model, tokenizer = load(str(run_dir / checkpoint), config.model.dtype)
    examples = to_examples(records, tokenizer, config.prompt)[:size]
    protocol, engine = GREEDY, None
    if stage == "grpo":
        protocol = eval_protocol(config.grpo, config.run.seed)
    if not protocol.greedy:  # sampled: through the engine the run used, as in training
        from grpo.rollout import make_engine

        engine = make_engine(config.rollout, model, tokenizer)
    try:
        _, samples = heldout_accuracy(model, tokenizer, examples, max_new_tokens=tokens,
                                      think_prefix=config.prompt.think_prefix, protocol=protocol, engine=engine)
    finally:
        if engine is not None:
            engine.close()
    params = {"source": str(run_dir / checkpoint), "stage": stage, "eval_size": size, "max_new_tokens": tokens,
              "decoding": "greedy" if protocol.greedy else "sampled", "n": protocol.n,
              "temperature": protocol.temperature, "top_p": protocol.top_p, "engine": config.rollout.engine,
              "prompt": vars(config.prompt), "seed": config.run.seed}
    return samples, params
