"""The code reasoner: the built-in program task through cold-start SFT and GRPO, rewarded by the code verifier
running every completion's program in the sandbox inside the training loop."""

import json
from pathlib import Path

from grpo import train
from grpo.config import load_config

RECIPE = str(Path(__file__).resolve().parent.parent / "configs" / "tiny_code.yaml")

CODE_REASONS = {"correct", "wrong_answer", "no_code", "compile_error", "runtime_error", "timeout", "memory",
                "infra_error"}


def test_grpo_on_the_program_task_is_rewarded_by_the_sandbox(tmp_path, engine="hf"):
    run_dir = tmp_path / "run"
    assert train.main(["--config", RECIPE, f"run.dir={run_dir}", f"rollout.engine={engine}",
                       "task.train_size=2000", "task.heldout_size=8", "sft.steps=150", "sft.warmup_steps=10",
                       "sft.eval_size=8", "sft.batch_size=8", "grpo.steps=2", "grpo.warmup_steps=0", "grpo.prompts_per_step=4",
                       "grpo.group_size=4", "grpo.eval_every=0", "grpo.eval_size=8", "grpo.save_every=0"]) == 0
    samples = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    trained = [s for s in samples if s["stage"] == "grpo" and s.get("split") == "train"]
    assert trained and {s["reason"] for s in trained} <= CODE_REASONS
    assert all(isinstance(s["gold"], dict) and s["gold"]["metadata"]["func_name"] == "f" for s in trained)
    # the cold start taught the format: completions hold a fenced program the sandbox ran
    assert any(s["reason"] != "no_code" for s in trained)
    summary = json.loads((run_dir / "summary.json").read_text())["stages"]
    assert 0.0 <= summary["grpo"]["heldout_accuracy"] <= 1.0
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert any("reward/mean" in m for m in metrics if m["stage"] == "grpo")


def test_the_code_recipe_loads_and_its_answers_are_code_problems():
    config = load_config(RECIPE)
    assert config.data.source == "programs" and config.run.stages == ["sft", "grpo"]
