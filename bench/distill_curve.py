"""Study (quality, not speed): the held-out learning curve of the r1_tiny student on one data source.

    python -m bench.distill_curve cold [--examples N] [--seed S] [--steps K] [--eval-every E] [KEY=VALUE ...]
    python -m bench.distill_curve traces --run-dir RUN [--kd-coef 0.5] [...]

`cold`: the distill baseline's data, the first N cold-start worked solutions (0: all). `traces`: a finished
r1_tiny run's kept traces (RUN/filter/traces.jsonl), optionally with logit distillation from RUN/final. The
student and its SFT settings are configs/r1_tiny.yaml's `distill` section (micro preset, lr 3e-3, 1,500 steps
unless --steps), the held-out set its 200 problems; the run's seed picks the data and the initial weights.
KEY=VALUE overrides the recipe (e.g. task.answer_sign_drops=0 for a cold start without errors).
Prints one line per evaluation and, last, one JSON object with the curve.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

RECIPE = Path(__file__).resolve().parents[1] / "configs" / "r1_tiny.yaml"


def main() -> None:
    from grpo.config import load_config
    from grpo.data.jsonl import read_jsonl
    from grpo.data.prompts import to_examples
    from grpo.data import environments
    from grpo.learner.supervised import Distillation
    from grpo.model import build_tokenizer, load
    from grpo.stages.distill import make_student, trace_examples
    from grpo.stages.judge import Judge
    from grpo.stages.sft import run_sft

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", choices=["cold", "traces"])
    parser.add_argument("--examples", type=int, default=0, help="cold: the first N worked solutions (0: all)")
    parser.add_argument("--run-dir", help="traces: a finished r1_tiny run")
    parser.add_argument("--kd-coef", type=float, default=0.0, help="traces: logit distillation from RUN/final")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--eval-every", type=int, default=300)
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="recipe overrides")
    args = parser.parse_intermixed_args()  # the overrides may follow the options
    if args.source == "traces" and not args.run_dir:
        parser.error("traces needs --run-dir")

    config = load_config(str(RECIPE), [f"run.seed={args.seed}", f"distill.sft.steps={args.steps}",
                                       f"distill.sft.eval_every={args.eval_every}",
                                       f"distill.sft.warmup_steps={min(30, args.steps)}", *args.overrides])
    tokenizer = build_tokenizer()
    records = environments.heldout(config).records("heldout", seed=config.run.seed)
    heldout = to_examples(records, tokenizer, config.prompt)
    kd = None
    if args.source == "cold":
        train = environments.of_data(config.data, config.task, hold_out=not config.heldout.source).records(
            "train", seed=args.seed)
        examples = to_examples(train[: args.examples] if args.examples else train, tokenizer, config.prompt)
    else:
        traces = [row for _, row in read_jsonl(Path(args.run_dir) / "filter" / "traces.jsonl")]
        examples = trace_examples(traces, tokenizer, config.prompt)
        if args.kd_coef > 0:
            teacher = load(str(Path(args.run_dir) / "final"))[0].eval().requires_grad_(False)
            kd = Distillation(teacher, args.kd_coef, config.distill.kd_temperature)
    student, _ = make_student(config.distill, config.model, tokenizer, args.seed)
    with tempfile.TemporaryDirectory(prefix="distill-curve-") as tmp:
        result = run_sft(student, tokenizer, examples, heldout, config.distill.sft, Path(tmp), seed=args.seed,
                         judge=Judge.of(config.reward, config.prompt), stage="curve", final=Path(tmp) / "model",
                         kd=kd)
    curve = [(e["step"], e["heldout_accuracy"]) for e in result["evals"]]
    for step, accuracy in curve:
        print(f"step {step}: held-out accuracy {accuracy:.3f}")
    print(json.dumps({"source": args.source, "examples": len(examples), "seed": args.seed, "kd_coef": args.kd_coef,
                      "steps": args.steps, "curve": curve}))


if __name__ == "__main__":
    main()
