"""Two short runs whose metrics are pinned (tests/test_reference_run.py): the cold start the test session's `base`
model comes from (tests/conftest.py runs it with `BASE`), and a few GRPO steps from that model with a KL reference,
two passes per batch and checkpoints, on the transformers engine.

    python tests/reference_run.py     # rewrites tests/data/reference_run.json from this checkout's code

Rewrite the reference only for a change that is meant to change what training computes, and say so in the commit;
a refactor must leave it as it is. Written on this project's 2-core CPU machine (torch 2.13.0+cpu).
"""

import json
import sys
import tempfile
from pathlib import Path

REFERENCE = Path(__file__).with_name("data") / "reference_run.json"
# a tiny model after a short cold start: it writes think blocks and ends its turn, so rewards vary within groups
# the default recipe's transcription error off: the pinned figures are the flawless task's
BASE = ["run.stages=[sft]", "task.answer_sign_drops=0", "sft.steps=80", "sft.warmup_steps=5", "sft.eval_every=0",
        "sft.eval_size=4", "sft.max_new_tokens=8", "task.train_size=2000", "task.heldout_size=4"]
GRPO = ["run.stages=[grpo]", "task.answer_sign_drops=0", "task.train_size=300", "task.heldout_size=8",
        "rollout.max_new_tokens=40", "rollout.engine=hf", "grpo.steps=5", "grpo.prompts_per_step=4",
        "grpo.group_size=4", "grpo.mu=2",
        "grpo.kl_coef=0.05", "grpo.lr=1e-3", "grpo.warmup_steps=0", "grpo.eval_every=0", "grpo.eval_size=8",
        "grpo.save_every=2", "reward.format_weight=0.5"]


def key(row: dict) -> str:
    """A metrics line's identity: stage, step, and whether it is a held-out evaluation."""
    return f"{row['stage']}:{row['step']}:{'eval' if 'eval/heldout_accuracy' in row else 'step'}"


def pinned(run_dir: Path) -> dict:
    """What a run computed: per metrics line its numbers (timings and throughput left out), and the summary's
    held-out accuracies."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    summary = json.loads((run_dir / "summary.json").read_text())
    lines = {key(r): {k: v for k, v in r.items() if isinstance(v, (int, float)) and k != "step"
                      and not k.startswith("perf/")} for r in rows}
    return {"lines": lines, "heldout_accuracy": {s: v["heldout_accuracy"] for s, v in summary["stages"].items()}}


def grpo_run(run_dir: Path, base: Path) -> dict:
    from grpo import train

    assert train.main([f"run.dir={run_dir}", f"model.path={base}", *GRPO]) == 0
    return pinned(run_dir)


if __name__ == "__main__":
    from grpo import train

    with tempfile.TemporaryDirectory() as tmp:
        assert train.main([f"run.dir={tmp}/base", *BASE]) == 0
        base = Path(tmp) / "base"
        result = {"base": pinned(base), "grpo": grpo_run(Path(tmp) / "grpo", base / "final")}
    REFERENCE.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {REFERENCE}", file=sys.stderr)
