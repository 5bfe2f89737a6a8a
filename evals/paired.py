"""Two models on the same held-out problems: is B better than A, or is the difference noise?

    python -m evals.paired --config configs/tiny_code.yaml MODEL_A MODEL_B [--size N]

Both models are evaluated greedily on the recipe's held-out set (its data, task, seed, prompt, verifier settings
and token budget: `grpo.eval_max_new_tokens` or `rollout.max_new_tokens`) by the function training uses. Prints one
JSON line: each model's accuracy, the problems both / only A / only B solve, and the exact McNemar p-value
(grpo/algo/passk.py), which uses the pairing that two independent accuracies with their standard errors ignore.
"""

from __future__ import annotations

import argparse
import json
import sys

from grpo.algo.passk import mcnemar_exact
from grpo.config import ConfigError, load_config
from grpo.data import environments
from grpo.model import load
from grpo.stages.evaluate import EvalPlan, evaluate_heldout


def compare(config_path: str, model_a: str, model_b: str, size: int = 0, overrides: list[str] | None = None) -> dict:
    config = load_config(config_path, overrides or [])
    records = environments.heldout(config).records("heldout", seed=config.run.seed)
    grpo = EvalPlan.of(config, "grpo")
    plan = EvalPlan(size or None, grpo.max_new_tokens, tools=grpo.tools)  # greedy, the GRPO stage's budget and tools
    verdicts = {}
    for name, path in (("a", model_a), ("b", model_b)):
        model, tokenizer = load(path, config.model.dtype)
        verdicts[name] = [s["correct"] for s in evaluate_heldout(model, tokenizer, records, config, plan).last_samples]
    a, b = verdicts["a"], verdicts["b"]
    only_a = sum(x and not y for x, y in zip(a, b))
    only_b = sum(y and not x for x, y in zip(a, b))
    return {"problems": len(a), "accuracy_a": sum(a) / len(a), "accuracy_b": sum(b) / len(b),
            "both": sum(x and y for x, y in zip(a, b)), "only_a": only_a, "only_b": only_b,
            "mcnemar_p": mcnemar_exact(only_a, only_b), "model_a": model_a, "model_b": model_b}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Two models on a recipe's held-out set, paired.")
    parser.add_argument("--config", required=True, help="the recipe whose held-out set and prompt to use")
    parser.add_argument("model_a")
    parser.add_argument("model_b")
    parser.add_argument("--size", type=int, default=0, help="the first N held-out problems (0: all)")
    parser.add_argument("overrides", nargs="*", help="key=value config overrides")
    args = parser.parse_args(argv)
    try:
        result = compare(args.config, args.model_a, args.model_b, args.size, args.overrides)
    except (ConfigError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
