"""Study (quality, not speed): where each model of an r1_tiny run gets the held-out set wrong, by the sign of the
gold answer, to see the cold start's transcription error (`task.answer_sign_drops`) learned and unlearned.

    python -m bench.answer_signs RUN [CHECKPOINT ...]

CHECKPOINT defaults to every model the run has: final (the teacher after GRPO), distill/student, distill/baseline
(and any checkpoints/grpo/step_N given). Each is evaluated as the run evaluated it (greedy, its held-out set), and
its wrong answers are split into "sign dropped" (the boxed answer is the gold without its minus sign) and other
errors. Prints a table and, last, one JSON object.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

MODELS = ("final", "distill/student", "distill/baseline")


def breakdown(samples: list[dict]) -> dict:
    """Counts of held-out samples by gold sign: right, wrong with only the minus sign dropped, wrong otherwise."""
    out = {sign: {"problems": 0, "right": 0, "sign_dropped": 0, "other_wrong": 0} for sign in ("negative", "other")}
    for s in samples:
        gold = str(s["gold"]).strip()
        row = out["negative" if gold.startswith("-") else "other"]
        row["problems"] += 1
        if s["correct"]:
            row["right"] += 1
        elif gold.startswith("-") and str(s["extracted"]).strip() == gold[1:]:
            row["sign_dropped"] += 1
        else:
            row["other_wrong"] += 1
    return out


def main() -> None:
    from evals.heldout import evaluate_run

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir")
    parser.add_argument("checkpoints", nargs="*", help=f"default: those of {', '.join(MODELS)} the run has")
    args = parser.parse_args()
    run = Path(args.run_dir)
    names = args.checkpoints or [m for m in MODELS if (run / m).is_dir()]
    if not names:
        parser.error(f"{run}: none of {', '.join(MODELS)} exists (not a finished r1_tiny run?)")
    results = {}
    print(f"{'model':<22} {'accuracy':>8}  {'negative gold: right / sign dropped / other':>44}"
          f"  {'other: right / wrong':>20}")
    for name in names:
        samples, _ = evaluate_run(run, name)
        b = breakdown(samples)
        n, o = b["negative"], b["other"]
        results[name] = {"accuracy": (n["right"] + o["right"]) / max(1, len(samples)), **b}
        print(f"{name:<22} {results[name]['accuracy']:>8.3f}  "
              f"{n['right']:>20} / {n['sign_dropped']:>3} / {n['other_wrong']:>3} of {n['problems']:<3}"
              f"  {o['right']:>10} / {o['sign_dropped'] + o['other_wrong']:>3} of {o['problems']}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
