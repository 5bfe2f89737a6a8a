"""The GRPO stage end to end on the tiny model: what the run writes, exact resume, dynamic sampling, and a
verifier that fails."""

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from crashes import crash_then_resume, logged, weights
from engines import ENGINES

import grpo.runs.checkpoint
import grpo.stages.rollouts
from grpo import train
from grpo.config import ConfigError, GRPOConfig, PromptConfig, RewardConfig, RolloutConfig, load_config
from grpo.data.prompts import Example, to_examples
from grpo.data.tasks import arithmetic
from grpo.model import cpu_has_bf16, load, run_device
from grpo.rollout import Completion, Group, HFEngine
from grpo.runs.checkpoint import latest_checkpoint
from grpo.runs.log import Timer
from grpo.stages.grpo import CHECKPOINTS
from grpo.stages.judge import Judge, score
from grpo.stages.rollouts import PromptSampler, Rollouts

SMALL = ["task.train_size=300", "task.heldout_size=8", "rollout.max_new_tokens=40", "grpo.prompts_per_step=4",
         "grpo.group_size=4", "grpo.eval_size=8", "grpo.eval_every=0", "grpo.lr=1e-3", "reward.format_weight=0.5",
         "grpo.warmup_steps=0"]


@ENGINES
def test_a_short_run_writes_metrics_samples_checkpoints_and_summary(tmp_path, base, engine):
    run_dir = tmp_path / "run"
    assert train.main([f"run.dir={run_dir}", "run.stages=[grpo]", f"model.path={base}", "grpo.steps=3",
                       "grpo.save_every=1", "grpo.keep_checkpoints=1", f"rollout.engine={engine}", *SMALL]) == 0
    summary = json.loads((run_dir / "summary.json").read_text())
    grpo_summary = summary["stages"]["grpo"]
    assert 0.0 <= grpo_summary["heldout_accuracy"] <= 1.0 and grpo_summary["steps"] == 3
    assert [e["step"] for e in grpo_summary["evals"]] == [0, 3]
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "reward/mean" in r]
    assert [r["step"] for r in steps] == [1, 2, 3]
    for key in ("reward/mean", "reward/correct_frac", "reward/format_frac", "reward/zero_std_frac",
                "rollout/len_mean", "rollout/truncated_frac", "rollout/logprob_gap", "loss/policy", "loss/kl",
                "loss/clip_frac", "policy/entropy", "optim/lr", "optim/grad_norm", "perf/rollout_s",
                "perf/verify_s", "perf/advantages_s", "perf/update_s", "perf/sync_s", "perf/log_s", "perf/step_s",
                "perf/rollout_tokens_per_s"):
        assert key in steps[0], key
    # checkpoints after steps 1 and 2 (the last step's model is final/): timed on the line after each
    assert ["perf/checkpoint_s" in r for r in steps] == [False, True, True]
    assert steps[1]["perf/step_s"] >= steps[1]["perf/checkpoint_s"] > 0
    assert steps[0]["rollout/logprob_gap"] < 1e-3  # the engine is the learner: same weights, same numbers
    samples = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    assert any(s["split"] == "train" and "completion" in s and "reward" in s for s in samples)
    # keep_checkpoints=1: step_1 was pruned; the final step is the final model, not a checkpoint
    assert sorted(p.name for p in (run_dir / "checkpoints" / "grpo").iterdir()) == ["step_2"]
    model, tokenizer = load(str(run_dir / "final"))
    assert model.config.vocab_size == len(tokenizer)


def test_resume_continues_exactly(tmp_path, base, monkeypatch):
    args = ["run.stages=[grpo]", f"model.path={base}", "grpo.steps=4", "grpo.save_every=2", *SMALL]
    straight = tmp_path / "straight"
    assert train.main([f"run.dir={straight}", *args]) == 0

    crashed = tmp_path / "crashed"
    crash_then_resume(monkeypatch, crashed, args, crash_at=3, checkpoint="step_2")  # step 3, after step 2's save

    a, b = weights(straight / "final"), weights(crashed / "final")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], v) for k, v in weights(base).items())  # training changed the model

    assert logged(straight) == logged(crashed)



def test_a_crash_just_after_a_checkpoint_keeps_every_logged_line(tmp_path, base, monkeypatch):
    """Killed the moment step 2's checkpoint is complete (before anything else runs): the resumed run starts
    from that checkpoint, so each line the checkpoint counts must already be in metrics.jsonl."""
    args = ["run.stages=[grpo]", f"model.path={base}", "grpo.steps=3", "grpo.save_every=1", "rollout.engine=hf",
            *SMALL]
    straight = tmp_path / "straight"
    assert train.main([f"run.dir={straight}", *args]) == 0

    crashed = tmp_path / "crashed"  # prune_checkpoints runs right after step_2 is renamed into place
    crash_then_resume(monkeypatch, crashed, args, crash_at=2, checkpoint="step_2",
                      inside=(grpo.runs.checkpoint, "prune_checkpoints"))
    assert logged(straight) == logged(crashed)
    a, b = weights(straight / "final"), weights(crashed / "final")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_needs_a_run_directory(tmp_path, capsys):
    assert train.main(["--resume", str(tmp_path / "nothing")]) == 2
    assert "no config.yaml" in capsys.readouterr().err


def test_dynamic_sampling_keeps_only_informative_groups(base):
    model, tokenizer = load(str(base))
    examples = to_examples(arithmetic(200, split="train", seed=0, digits=1, ops=4), tokenizer, PromptConfig("plain"))
    cfg = GRPOConfig(prompts_per_step=6, group_size=4, dynamic_sampling=True, max_sampling_rounds=3)
    rollouts = Rollouts(HFEngine(model, tokenizer), examples, cfg, RolloutConfig(max_new_tokens=40),
                        RewardConfig(format_weight=0.5), judge=Judge(think_prefix=True), seed=0)
    batch = rollouts.collect(0, Timer())
    kept, seen, sampler = batch.kept, batch.seen, rollouts.sampler
    assert 1 <= seen["rounds"] <= 3 and len(kept) <= 6
    assert sampler.state_dict()["position"] == 6 * seen["rounds"]
    for _, _, scores in kept:
        assert len({s["reward"] for s in scores}) > 1
    if seen["rounds"] < 3:
        assert len(kept) == 6  # it stopped early only because the batch was full


def test_a_run_stopped_after_grpo_saved_its_model_is_not_trained_again(tmp_path, base, monkeypatch, capsys):
    """A stop after GRPO replaced final/ and before summary.json recorded it: final/ is no longer the model GRPO
    started from, so --resume records the stage from final/ (its result is saved there) and does not run it again
    from its own output."""
    import grpo.pipeline
    from crashes import count_calls, interrupt, weights

    run_dir = tmp_path / "run"
    interrupt(monkeypatch, grpo.pipeline, "write_atomic", at=2)  # config.yaml, then summary.json after grpo
    with pytest.raises(KeyboardInterrupt):
        train.main([f"run.dir={run_dir}", "run.stages=[grpo]", f"model.path={base}", "grpo.steps=2",
                    "grpo.save_every=0", *SMALL])
    monkeypatch.setattr(grpo.pipeline, "write_atomic", grpo.pipeline.write_atomic.__wrapped__)
    assert not (run_dir / "summary.json").exists()
    trained = weights(run_dir / "final")
    calls = count_calls(monkeypatch, grpo.pipeline, "run_grpo")
    assert train.main(["--resume", str(run_dir)]) == 0
    assert calls["n"] == 0 and "grpo: finished before the stop" in capsys.readouterr().out
    summary = json.loads((run_dir / "summary.json").read_text())["stages"]["grpo"]
    assert summary["steps"] == 2 and [e["step"] for e in summary["evals"]] == [0, 2]
    assert all(torch.equal(trained[k], v) for k, v in weights(run_dir / "final").items())


def test_a_checkpoint_swap_stopped_halfway_is_finished_on_the_next_look(tmp_path):
    """Replacing a checkpoint renames the old one aside before the new one goes in: at every point a complete one
    exists, and `settle` finishes the swap."""
    from grpo.runs.checkpoint import settle

    def make(path, text):
        path.mkdir()
        (path / "trainer_state.pt").write_text(text)

    final = tmp_path / "final"
    make(final.with_name("final.old"), "old")  # stopped between the two renames: the new one still in final.tmp
    make(final.with_name("final.tmp"), "new")
    settle(final)
    assert (final / "trainer_state.pt").read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["final"]
    make(final.with_name("final.old"), "old")  # stopped before the old one was removed
    settle(final)
    assert (final / "trainer_state.pt").read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["final"]
    (final / "trainer_state.pt").unlink()
    final.rmdir()
    make(final.with_name("final.old"), "old")  # the old one aside and no new one: it goes back
    settle(final)
    assert (final / "trainer_state.pt").read_text() == "old"


def test_reward_means_leave_out_the_completions_whose_judgement_failed():
    """A NaN reward (an infrastructure failure, its group dropped) is not a zero in the step's means."""
    from grpo.rollout.types import Completion
    from grpo.stages.rollouts import Batch

    batch = Batch()
    batch.seen.update(groups=1, infra=1, completions=[Completion([2], "x", [-0.1], "stop")] * 4,
                      scores=[{"reward": r, "correct": r == 1.0, "format": 1.0, "reason": "x", "terms": {"t": t}}
                              for r, t in [(math.nan, 0.5), (1.0, math.nan), (1.0, 0.5), (1.0, 0.5)]])
    metrics = batch.metrics(1.0)
    assert metrics["reward/mean"] == 1.0 and metrics["reward/t"] == 0.5
    assert metrics["reward/correct_frac"] == 0.75 and metrics["reward/infra_error_frac"] == 1.0


def test_a_failing_verifier_pool_drops_its_groups_and_says_so(monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise RuntimeError("worker pool is gone")

    monkeypatch.setattr("verifiers.math.verify_batch", broken)
    groups = [Group("Compute 1 + 1.\n", [1], [Completion([2], "2</think>\\boxed{2}", [-0.1], "stop")])]
    (scores,) = score(groups, [Example("Compute 1 + 1.\n", "2", None)], Judge(think_prefix=True), RewardConfig(),
                      max_new_tokens=8)
    assert math.isnan(scores[0]["reward"]) and scores[0]["reason"] == "verifier_error"  # dropped, never learned
    assert "verifier failed" in capsys.readouterr().out


def test_prompt_sampler_state_round_trips():
    a = PromptSampler(5, seed=3)
    first = a.take(7)  # crosses into the second pass
    assert sorted(first[:5]) == [0, 1, 2, 3, 4]
    b = PromptSampler(5, seed=3)
    b.load_state_dict(a.state_dict())
    assert a.take(6) == b.take(6)


@pytest.mark.parametrize("override, key", [
    ("grpo.group_size=1", "grpo.group_size"), ("grpo.advantage=zscore", "grpo.advantage"),
    ("grpo.loss_aggregation=sum", "grpo.loss_aggregation"), ("rollout.engine=sglang", "rollout.engine"),
    ("reward.overlong_buffer=400", "reward.overlong_buffer"), ("grpo.ratio_level=seq", "grpo.ratio_level"),
    ("rollout.vllm_gpu_memory_utilization=1.5", "rollout.vllm_gpu_memory_utilization"),
    ("grpo.mu=0", "grpo.mu must"), ("grpo.micro_batch_size=0", "grpo.micro_batch_size must"),
    ("grpo.is_cap=-1", "grpo.is_cap must"), ("grpo.max_grad_norm=.nan", "grpo.max_grad_norm must"),
    ("sft.max_grad_norm=0", "sft.max_grad_norm must"),
])
def test_grpo_config_errors_name_the_key(override, key):
    with pytest.raises(ConfigError, match=key):
        load_config(train.DEFAULT_RECIPE, [override])


def test_nan_losses_are_skipped_then_stop_the_run(tmp_path, base, monkeypatch, capsys):
    """A NaN advantage makes the loss NaN: the update is skipped (weights unchanged, logged); one such step
    and the run goes on; grpo.max_nonfinite_steps in a row stop it with a message, the checkpoint intact."""
    real, calls = grpo.stages.rollouts.advantages, {"n": 0}

    def nan_on(steps):
        def advantages(rewards, estimator):
            calls["n"] += 1
            out = real(rewards, estimator)
            return out * float("nan") if calls["n"] in steps else out
        return advantages

    args = ["run.stages=[grpo]", f"model.path={base}", "grpo.steps=3", "rollout.engine=hf", *SMALL]
    monkeypatch.setattr(grpo.stages.rollouts, "advantages", nan_on({2}))
    assert train.main([f"run.dir={tmp_path / 'once'}", *args]) == 0
    rows = [json.loads(line) for line in (tmp_path / "once" / "metrics.jsonl").read_text().splitlines()]
    assert [r["optim/skipped_nonfinite"] for r in rows if "reward/mean" in r] == [0, 1, 0]
    assert "non-finite loss or gradient norm, update skipped" in capsys.readouterr().out

    calls["n"] = 0
    monkeypatch.setattr(grpo.stages.rollouts, "advantages", nan_on({2, 3, 4, 5}))
    run_dir = tmp_path / "always"
    assert train.main([f"run.dir={run_dir}", *args, "grpo.steps=6", "grpo.save_every=1",
                       "grpo.max_nonfinite_steps=2"]) == 1
    err = capsys.readouterr().err
    assert "2 steps in a row had a NaN/inf loss" in err and "grpo.max_nonfinite_steps=2" in err
    newest = latest_checkpoint(run_dir / CHECKPOINTS)
    assert newest.name == "step_2"  # written after step 2 (skipped); step 3 stopped the run before saving
    assert all(torch.isfinite(v).all() for v in weights(newest).values())


def _run_cli(*args):
    import subprocess
    import sys

    return subprocess.Popen([sys.executable, "-m", "grpo.train", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("when", ["mid-checkpoint", "mid-step"])
def test_kill_9_then_resume_equals_an_uninterrupted_run(tmp_path, base, when):
    """SIGKILL a real training process while it writes a checkpoint (a `.tmp` directory exists) or between
    checkpoints; `--resume` finishes with the same metrics.jsonl and final weights as a run never stopped."""
    import signal
    import time

    args = ["run.stages=[grpo]", f"model.path={base}", "grpo.steps=6", "grpo.save_every=1", "grpo.keep_checkpoints=2",
            "rollout.engine=hf", *SMALL]
    straight = tmp_path / "straight"
    assert train.main([f"run.dir={straight}", *args]) == 0

    killed = tmp_path / "killed"
    proc = _run_cli(f"run.dir={killed}", *args)
    root = killed / CHECKPOINTS
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        tmp = [p for p in root.glob("step_*.tmp")] if root.exists() else []
        done = latest_checkpoint(root) if root.exists() else None
        if when == "mid-checkpoint" and tmp and done is not None:
            break
        if when == "mid-step" and done is not None and done.name == "step_3":
            time.sleep(0.3)
            break
        time.sleep(0.002)
    assert proc.poll() is None, f"the run ended before it could be killed: {proc.stderr.read()[-2000:]}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "summary.json").exists() or "grpo" not in json.loads((killed / "summary.json").read_text())
    assert train.main(["--resume", str(killed)]) == 0
    assert logged(straight) == logged(killed)
    a, b = weights(straight / "final"), weights(killed / "final")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not list(root.glob("*.tmp"))  # the resumed run rewrote the step whose save was cut short


def test_a_full_disk_while_saving_keeps_the_previous_checkpoint(tmp_path, base, monkeypatch, capsys):
    """The disk fills up during the second checkpoint: a clear error, no half-written directory, the first
    checkpoint intact, and --resume (space freed) finishes the run."""
    import errno

    real_save, calls = grpo.runs.checkpoint.torch.save, {"n": 0}

    def full_disk(obj, f, *a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *a, **k)

    monkeypatch.setattr(grpo.runs.checkpoint.torch, "save", full_disk)
    run_dir = tmp_path / "run"
    args = ["run.stages=[grpo]", f"model.path={base}", "grpo.steps=3", "grpo.save_every=1", "rollout.engine=hf",
            *SMALL]
    assert train.main([f"run.dir={run_dir}", *args]) == 1
    err = capsys.readouterr().err
    assert "could not write checkpoint" in err and "No space left on device" in err and "step_1 is intact" in err
    root = run_dir / CHECKPOINTS
    assert [p.name for p in root.iterdir()] == ["step_1"]
    monkeypatch.setattr(grpo.runs.checkpoint.torch, "save", real_save)
    assert train.main(["--resume", str(run_dir)]) == 0
    assert json.loads((run_dir / "summary.json").read_text())["stages"]["grpo"]["steps"] == 3


def test_a_full_disk_under_safetensors_is_a_checkpoint_error_too(tmp_path):
    """safetensors reports a full disk with its own exception (not an OSError): the same clear error, nothing left."""
    from safetensors import SafetensorError

    from grpo.runs.checkpoint import CheckpointError, save_checkpoint

    class Model:
        def save_pretrained(self, path, state_dict=None):
            Path(path).mkdir(parents=True, exist_ok=True)
            (Path(path) / "model.safetensors").write_bytes(b"partial")
            raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    with pytest.raises(CheckpointError, match="could not write checkpoint .*step_1: Error while serializing"):
        save_checkpoint(tmp_path / "step_1", Model(), None, {})
    assert list(tmp_path.iterdir()) == []


def test_a_bf16_mixed_precision_run_trains_fp32_weights(tmp_path, base, capsys):
    """model.mixed_precision=bf16: the learner and the transformers engine run their forwards under autocast,
    so the engine's sampling logprobs are the learner's (same numerics); weights stay fp32 and move. On a CPU
    without bf16 instructions (an AVX2-only one) the run says that bf16 is slow there."""
    run_dir = tmp_path / "run"
    assert train.main([f"run.dir={run_dir}", "run.stages=[grpo]", f"model.path={base}", "grpo.steps=2",
                       "model.mixed_precision=bf16", "rollout.engine=hf", *SMALL]) == 0
    slow = "warning: model.mixed_precision: bf16 on a CPU without bf16 instructions"
    assert (slow in capsys.readouterr().out) == (run_device().type == "cpu" and not cpu_has_bf16())
    steps = [r for r in (json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines())
             if "loss/policy" in r]
    assert len(steps) == 2 and all(r["optim/skipped_nonfinite"] == 0 for r in steps)
    assert steps[0]["rollout/logprob_gap"] < 0.05, steps[0]["rollout/logprob_gap"]
    final, start = weights(run_dir / "final"), weights(base)
    assert all(v.dtype == torch.float32 for v in final.values())
    assert any(not torch.equal(final[k], start[k]) for k in final)



def test_a_checkpoint_from_another_backend_family_is_refused(tmp_path, base, capsys):
    """FSDP checkpoints key the optimizer state by parameter name, one process and DDP by index: resuming one
    kind the other way is refused with a message instead of a torch KeyError."""
    run_dir = tmp_path / "run"
    args = ["run.stages=[grpo]", f"model.path={base}", "grpo.steps=2", "grpo.save_every=1", *SMALL]
    assert train.main([f"run.dir={run_dir}", *args]) == 0
    checkpoint = run_dir / "checkpoints" / "grpo" / "step_1"
    state = torch.load(checkpoint / "trainer_state.pt", weights_only=False)
    state["optimizer"]["state"] = {f"param_{k}": v for k, v in state["optimizer"]["state"].items()}  # as FSDP keys
    torch.save(state, checkpoint / "trainer_state.pt")
    (run_dir / "summary.json").unlink()  # as a run stopped after step 1 left it (no summary, no final model)
    shutil.rmtree(run_dir / "final")
    assert train.main(["--resume", str(run_dir)]) != 0
    assert "its optimizer state was written under FSDP; resume it the same way" in capsys.readouterr().err
