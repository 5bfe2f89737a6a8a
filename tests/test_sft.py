"""The SFT stage: hand-checked schedule and masking, micro-batch invariance, and a short real run."""

import json
import math

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from grpo import train
from grpo.config import SFTConfig
from grpo.data.prompts import Example
from grpo.learner.optim import lr_factor
from grpo.learner.supervised import IGNORE, token_losses
from grpo.model import build_model, build_tokenizer
from grpo.stages.sft import collate, tokenize


def test_lr_schedule_by_hand():
    cfg = SFTConfig(steps=10, warmup_steps=2, min_lr_ratio=0.1)
    # warmup: (step + 1) / 2
    assert lr_factor(0, cfg) == 0.5 and lr_factor(1, cfg) == 1.0
    # cosine over the 8 remaining steps: 0.1 + 0.9 * 0.5 * (1 + cos(pi * progress))
    assert lr_factor(2, cfg) == pytest.approx(1.0, abs=1e-12)
    assert lr_factor(6, cfg) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)), abs=1e-12)  # 0.55
    assert lr_factor(10, cfg) == pytest.approx(0.1, abs=1e-12)


def test_only_completion_tokens_carry_labels_and_long_ones_are_counted():
    tokenizer = build_tokenizer()
    examples = [Example("ab", "1", "cd<|im_end|>"), Example("x" * 50, "1", "y<|im_end|>")]
    sequences, too_long = tokenize(examples, tokenizer, max_length=10)
    assert too_long == 1 and len(sequences) == 1
    ids, labels = sequences[0]
    assert labels[:2] == [IGNORE, IGNORE] and labels[2:] == ids[2:] and len(ids) == 5


def test_a_step_is_the_same_however_it_is_split_into_micro_batches():
    tokenizer = build_tokenizer()
    examples = [Example(f"q{i}", "1", "a" * (i + 1) + "<|im_end|>") for i in range(4)]
    sequences, _ = tokenize(examples, tokenizer, max_length=64)

    def grads(splits):
        model = build_model("tiny", tokenizer, seed=0)
        batches = [collate([sequences[i] for i in split], tokenizer.pad_token_id) for split in splits]
        n_tokens = sum(int((b["labels"][:, 1:] != IGNORE).sum()) for b in batches)
        for b in batches:
            loss, _ = token_losses(model, b)
            (loss / n_tokens).backward()
        return torch.cat([p.grad.flatten() for p in model.parameters()])

    whole = grads([[0, 1, 2, 3]])
    assert torch.allclose(whole, grads([[0, 1], [2, 3]]), atol=1e-6, rtol=0)
    assert torch.allclose(whole, grads([[0], [1], [2], [3]]), atol=1e-6, rtol=0)


def test_a_short_tiny_sft_run_writes_everything(tmp_path):
    run_dir = tmp_path / "run"
    code = train.main(["--config", str(train.DEFAULT_RECIPE.with_name("tiny_sft.yaml")), f"run.dir={run_dir}",
                       "sft.steps=20", "sft.warmup_steps=2", "sft.eval_every=10", "sft.eval_size=8",
                       "sft.max_new_tokens=16", "task.train_size=400", "task.heldout_size=8", "sft.log_every=5"])
    assert code == 0
    summary = json.loads((run_dir / "summary.json").read_text())
    sft = summary["stages"]["sft"]
    assert 0.0 <= sft["heldout_accuracy"] <= 1.0 and sft["seconds"] > 0 and sft["steps"] == 20
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    losses = [m["loss/sft"] for m in metrics if "loss/sft" in m]
    assert len(losses) == 4 and losses[-1] < losses[0]  # it learns
    assert [m["step"] for m in metrics if "eval/heldout_accuracy" in m] == [10, 20]
    assert (run_dir / "config.yaml").exists() and (run_dir / "samples.jsonl").exists()
    model = AutoModelForCausalLM.from_pretrained(run_dir / "final")
    tokenizer = AutoTokenizer.from_pretrained(run_dir / "final")
    assert model.config.model_type == "qwen2" and tokenizer.eos_token == "<|im_end|>"


def test_bad_config_or_data_exit_with_a_clear_message(tmp_path, capsys):
    assert train.main(["sft.stepz=1"]) == 2
    assert "unknown key sft.stepz" in capsys.readouterr().err
    missing = tmp_path / "nope.jsonl"
    assert train.main([f"run.dir={tmp_path / 'r'}", "data.source=jsonl", f"data.path={missing}",
                       "data.solution_field=solution"]) == 2
    assert "no such file" in capsys.readouterr().err


def test_a_cold_start_killed_mid_stage_resumes_exactly(tmp_path, monkeypatch):
    """sft.save_every: a run stopped inside step 5 resumes from its step-4 checkpoint and ends with the same
    weights and the same metrics.jsonl as a run that never stopped (optimizer, schedule, batch order, RNG)."""
    from crashes import count_calls, interrupt, logged, weights

    import grpo.learner.policy
    from grpo.runs.checkpoint import latest_checkpoint

    args = ["run.stages=[sft]", "sft.steps=6", "sft.warmup_steps=2", "sft.save_every=2", "sft.log_every=1",
            "sft.eval_every=3", "sft.eval_size=2", "sft.max_new_tokens=8", "sft.batch_size=8", "task.train_size=100",
            "task.heldout_size=2"]
    assert train.main([f"run.dir={tmp_path / 'straight'}", *args]) == 0
    interrupt(monkeypatch, grpo.learner.policy, "train_step", at=5)
    crashed = tmp_path / "crashed"
    with pytest.raises(KeyboardInterrupt):
        train.main([f"run.dir={crashed}", *args])
    assert latest_checkpoint(crashed / "checkpoints" / "sft").name == "step_4"
    resumed_steps = count_calls(monkeypatch, grpo.learner.policy, "train_step")
    assert train.main(["--resume", str(crashed)]) == 0
    assert resumed_steps["n"] == 2  # steps 5 and 6: it continued, it did not start over
    straight, resumed = weights(tmp_path / "straight" / "final"), weights(crashed / "final")
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
    assert logged(tmp_path / "straight") == logged(crashed)


def test_a_cold_start_killed_while_saving_its_model_logs_its_last_evaluation_once(tmp_path, monkeypatch):
    """Stopped while writing final/, after the last step's checkpoint: the resumed run neither trains nor
    evaluates again, and its metrics.jsonl is the uninterrupted run's (one evaluation line at the last step)."""
    from crashes import interrupt, logged, weights

    import grpo.runs.checkpoint

    args = ["run.stages=[sft]", "sft.steps=4", "sft.warmup_steps=2", "sft.save_every=2", "sft.log_every=1",
            "sft.eval_every=3", "sft.eval_size=2", "sft.max_new_tokens=8", "sft.batch_size=8", "task.train_size=100",
            "task.heldout_size=2"]
    assert train.main([f"run.dir={tmp_path / 'straight'}", *args]) == 0
    interrupt(monkeypatch, grpo.runs.checkpoint, "save_checkpoint", at=3)  # step_2, step_4, then final/
    crashed = tmp_path / "crashed"
    with pytest.raises(KeyboardInterrupt):
        train.main([f"run.dir={crashed}", *args])
    monkeypatch.setattr(grpo.runs.checkpoint, "save_checkpoint", grpo.runs.checkpoint.save_checkpoint.__wrapped__)
    assert train.main(["--resume", str(crashed)]) == 0
    assert logged(tmp_path / "straight") == logged(crashed)
    assert [r["step"] for r in logged(crashed) if "eval/heldout_accuracy" in r] == [3, 4]
    straight, resumed = weights(tmp_path / "straight" / "final"), weights(crashed / "final")
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)


def test_a_token_budget_cuts_a_batch_by_padded_tokens_and_keeps_the_update():
    from grpo.stages.sft import split

    sequences = [([0] * n, [0] * n) for n in (10, 4, 5, 20)]
    assert split([0, 1, 2, 3], sequences, 0) == [[0, 1, 2, 3]]
    # by length 4, 5, 10, 20: [4, 5] is 2 x 5 = 10 <= 12; 3 x 10 = 30 > 12; 20 alone
    assert split([0, 1, 2, 3], sequences, 12) == [[1, 2], [0], [3]]


def test_an_sft_run_with_a_token_budget_trains_the_same_model(tmp_path):
    base = ["--config", str(train.DEFAULT_RECIPE.with_name("tiny_sft.yaml")), "sft.steps=6", "sft.warmup_steps=1",
            "sft.eval_every=0", "sft.eval_size=4", "sft.max_new_tokens=8", "task.train_size=200",
            "task.heldout_size=4", "sft.batch_size=8"]
    assert train.main([*base, f"run.dir={tmp_path / 'whole'}"]) == 0
    assert train.main([*base, f"run.dir={tmp_path / 'cut'}", "sft.max_tokens_per_micro_batch=120"]) == 0
    from safetensors.torch import load_file

    a, b = (load_file(str(tmp_path / name / "final" / "model.safetensors")) for name in ("whole", "cut"))
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-5, rtol=1e-4), key
