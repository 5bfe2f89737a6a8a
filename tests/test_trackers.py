"""run.report_to: what TensorBoard, W&B (offline) and Trackio hold after a run, read back with their own readers
(TensorBoard's EventAccumulator, W&B's run file with its protobuf schema: tests/wandb_records.py, Trackio's
SQLiteStorage); a resumed run continues the same tracker run; a tracker that fails warns once and the run goes on."""

import json
import sys

import pytest
from crashes import crash_then_resume
from test_trainer import SMALL
from wandb_records import history, run_ids

from grpo import train
from grpo.runs.sinks import MAX_SAMPLES, Sinks, numbers, sample_table

ALL = "run.report_to=[tensorboard,wandb,trackio]"


def lines(run_dir, stage="grpo"):
    return [r for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines()) if r["stage"] == stage]


def tensorboard_scalars(log_dir, tag):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    return events, [(e.step, e.value) for e in events.Scalars(tag)]


def test_three_trackers_hold_every_line_and_a_resume_continues_their_runs(tmp_path, base, monkeypatch):
    """Killed in step 4 (the newest checkpoint is step 2's, so step 3 is logged twice), then resumed."""
    run_dir, project = tmp_path / "watched", f"test-{tmp_path.name}"
    args = ["run.stages=[grpo]", f"model.path={base}", "grpo.steps=5", "grpo.save_every=2", "rollout.engine=hf",
            ALL, f"run.project={project}", *SMALL, "grpo.eval_every=2"]
    crash_then_resume(monkeypatch, run_dir, args, crash_at=4, checkpoint="step_2")
    steps = [r for r in lines(run_dir) if "reward/mean" in r]
    assert [r["step"] for r in steps] == [1, 2, 3, 4, 5]
    expected = [(r["step"], r["reward/mean"]) for r in steps]

    # TensorBoard: one directory per stage; the steps replayed after the checkpoint replace the first attempt's
    events, rewards = tensorboard_scalars(run_dir / "tensorboard" / "grpo", "reward/mean")
    assert rewards == pytest.approx(expected, abs=1e-6)
    _, heldout = tensorboard_scalars(run_dir / "tensorboard" / "grpo", "eval/heldout_accuracy")
    assert [s for s, _ in heldout] == [0, 2, 4, 5]
    tensors = events.Tags()["tensors"]
    assert "samples/train/text_summary" in tensors and "config/text_summary" in tensors

    # W&B: two offline files (before and after the kill) of one run, its id kept in trackers.json
    run_id = json.loads((run_dir / "trackers.json").read_text())["wandb"]["id"]
    assert run_ids(run_dir) == {run_id} and len(list(run_dir.glob("wandb/offline-run-*"))) == 2
    rows = history(run_dir)
    logged = sorted({(r["grpo/step"], r["grpo/reward/mean"]) for r in rows if "grpo/reward/mean" in r})
    assert logged == pytest.approx(expected, abs=1e-6)
    assert [r["grpo/step"] for r in rows if "grpo/reward/mean" in r] == [1, 2, 3, 3, 4, 5]  # step 3 sent twice
    assert any(k.startswith("grpo/samples/train") for r in rows for k in r)

    # Trackio: the resumed run is the same run (one run of that name in the project), config included
    from trackio.sqlite_storage import SQLiteStorage

    assert SQLiteStorage.get_runs(project) == ["watched"]
    logs = SQLiteStorage.get_logs(project, "watched")
    assert sorted({(r["step"], r["grpo/reward/mean"]) for r in logs if "grpo/reward/mean" in r}) == pytest.approx(
        expected, abs=1e-6)
    assert any("grpo/samples/train" in r for r in logs)
    assert SQLiteStorage.get_run_config(project, "watched")["grpo"]["steps"] == 5


def test_a_tracker_that_cannot_start_warns_once_and_the_run_goes_on(tmp_path, base, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "tensorboard").write_text("a file where TensorBoard's directory goes")
    assert train.main([f"run.dir={run_dir}", "run.stages=[grpo]", f"model.path={base}", "grpo.steps=2",
                       "rollout.engine=hf", "run.report_to=[tensorboard,wandb]", *SMALL]) == 0
    err = capsys.readouterr().err
    assert err.count("run.report_to tensorboard failed to start") == 1 and "metrics.jsonl and the other" in err
    assert [r["step"] for r in lines(run_dir) if "reward/mean" in r] == [1, 2]
    assert [r["grpo/step"] for r in history(run_dir) if "grpo/reward/mean" in r] == [1, 2]


class Flaky:
    """A tracker that takes `good` calls, then raises as a lost connection would."""

    def __init__(self, good: int):
        self.good, self.got = good, []

    def metrics(self, label, step, values):
        if len(self.got) >= self.good:
            raise ConnectionError("connection reset by peer\nretrying")
        self.got.append((label, step, values))

    def close(self):
        pass


def test_a_tracker_failing_mid_run_is_dropped_with_one_warning_and_the_others_go_on():
    warnings, flaky, steady = [], Flaky(good=1), Flaky(good=100)
    sinks = Sinks({"flaky": flaky, "steady": steady}, warn=warnings.append)
    for step in (1, 2, 3):
        sinks.metrics({"stage": "grpo", "step": step, "reward/mean": step / 10})
    sinks.close()
    assert [s for _, s, _ in flaky.got] == [1] and [s for _, s, _ in steady.got] == [1, 2, 3]
    assert warnings == ["warning: run.report_to flaky failed to log (ConnectionError: connection reset by peer); it "
                        "gets nothing more from this run, metrics.jsonl and the other trackers go on"]


def test_a_tracker_that_does_not_import_is_refused_before_training(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "wandb", None)  # what Python does for a package that is not installed
    assert train.main([f"run.dir={tmp_path / 'run'}", "run.report_to=[wandb]", "sft.steps=5",
                       "sft.warmup_steps=0"]) == 2
    err = capsys.readouterr().err
    assert "run.report_to: wandb does not import here" in err and "pip install 'grpo-reasoner[wandb]'" in err
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


@pytest.mark.parametrize("value, message", [("[mlflow]", "unknown tracker"), ("[wandb,wandb]", "twice")])
def test_unknown_or_repeated_trackers_are_config_errors(value, message, capsys):
    assert train.main([f"run.report_to={value}"]) == 2
    assert "run.report_to" in capsys.readouterr().err


def test_the_config_knows_every_tracker():
    from grpo.config.schema import TRACKERS
    from grpo.runs.sinks import NAMES

    assert TRACKERS == NAMES


def test_a_line_becomes_numbers_under_its_stage_and_tags():
    assert numbers({"stage": "eval", "step": 0, "model": "final", "eval/heldout_accuracy": 0.5, "n": 3,
                    "ok": True, "list": [1]}) == ("eval.final", {"eval/heldout_accuracy": 0.5, "n": 3.0, "ok": 1.0})
    columns, data = sample_table([{"split": "train", "prompt": "p", "completion": "c", "reward": float("nan")}] * 9)
    assert columns[:3] == ["split", "prompt", "completion"] and len(data) == MAX_SAMPLES
    assert data[0] == ["train", "p", "c", "", "nan", ""]
