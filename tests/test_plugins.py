"""Reward plug-ins and user verifiers (verifiers/plugins.py): run in worker processes under the run's deadline, every
way of failing a completion is a zero with a reason, never a stalled or crashed run; a plug-in that cannot be used is
refused before training, naming its key. End to end: the README's example trains with its term in metrics.jsonl and
samples.jsonl, misbehaving plug-ins leave the run going, a LiveCodeBench-format jsonl trains with sandbox rewards from
a config alone, and a file without a heldout section keeps its held-out rows out of training."""

import json
import math
import time
from pathlib import Path

import numpy as np
import pytest

from grpo import train
from grpo.algo.rewards import combine
from grpo.config import DataConfig, TaskConfig
from grpo.data.jsonl import DataError
from grpo.data.holdout import held_out
from grpo.data.records import load_records
from grpo.data.tasks import programs
from verifiers import plugins, route

ROOT = Path(__file__).resolve().parents[1]
T = "plugin_examples"  # tests/ is on the path of the tests and of the worker processes they start


def test_return_values_become_values_or_reasons():
    assert plugins.as_value(0.25) == plugins.Value(0.25)
    assert plugins.as_value(True) == plugins.Value(1.0) and plugins.as_value(3) == plugins.Value(3.0)
    assert plugins.as_value(np.float32(0.5)) == plugins.Value(0.5)
    assert plugins.as_value(None) == plugins.Value(0.0, "no_opinion")
    assert plugins.as_value("high") == plugins.Value(0.0, "reward_error", "returned a str, not a number")
    assert plugins.as_value(math.inf).reason == "reward_error"
    assert math.isnan(plugins.as_value(math.nan).value)  # an infrastructure failure: the group will be dropped
    assert plugins.as_value(10**400) == plugins.Value(0.0, "reward_error",
                                                      "returned an int of 401 digits, too large for a float")


@pytest.mark.parametrize("target, message", [
    ("nowhere_module:fn", "module 'nowhere_module' does not import: ModuleNotFoundError"),
    (f"{T}:missing", f"module '{T}' has no 'missing'"),
    (f"{T}:NOT_A_FUNCTION", "'NOT_A_FUNCTION' is a int, not a function"),
    (f"{T}:one_argument", "it must take (completion: str, row: dict)"),
    ("no_colon", "expected module:function"),
])
def test_a_plugin_that_cannot_be_used_is_refused_by_name(target, message):
    with pytest.raises(plugins.PluginError, match=message.replace("(", r"\(").replace(")", r"\)")):
        plugins.check(target)


def test_misbehaving_plugins_cost_a_zero_and_a_reason_within_the_deadline():
    completions, rows = ["a", "bb"], [{"answer": "1"}, {"answer": "2"}]
    assert [v.value for v in plugins.run(f"{T}:length", completions, rows, timeout_s=5, workers=2)] == [1.0, 2.0]
    start = time.monotonic()
    slept = plugins.run(f"{T}:sleeps", completions, rows, timeout_s=1, workers=2)
    assert [v.reason for v in slept] == ["reward_timeout"] * 2 and time.monotonic() - start < 15
    raised = plugins.run(f"{T}:raises", completions, rows, timeout_s=5, workers=2)
    assert raised[0].reason == "reward_error" and "ValueError: cannot score 'a'" in raised[0].detail
    assert [v.reason for v in plugins.run(f"{T}:crashes", completions, rows, timeout_s=5, workers=2)] == \
        ["reward_crash"] * 2
    text = plugins.run(f"{T}:returns_text", completions, rows, timeout_s=5, workers=2)
    assert text[0] == plugins.Value(0.0, "reward_error", "returned a str, not a number")
    assert all(math.isnan(v.value) for v in plugins.run(f"{T}:returns_nan", completions, rows, timeout_s=5,
                                                       workers=2))
    assert plugins.run(f"{T}:length", ["ccc"], [{}], timeout_s=5, workers=2)[0].value == 3.0  # the pool goes on
    assert [v.reason for v in plugins.run(f"{T}:huge", completions, rows, timeout_s=5, workers=2)] == \
        ["reward_error"] * 2  # one value too large for a float costs its own completion, not the batch
    generator = plugins.run(f"{T}:returns_generator", completions, rows, timeout_s=5, workers=2)
    assert generator[0] == plugins.Value(0.0, "reward_error", "returned a generator, not a number")


def test_a_slow_import_is_not_charged_to_the_first_calls():
    """The worker imports the plug-in's module (2 s here) before it takes a call with a 1 s deadline."""
    values = plugins.run("plugin_slow_import:one", ["a", "b", "c"], [{}] * 3, timeout_s=1, workers=2)
    assert values == [plugins.Value(1.0)] * 3


def test_a_timeout_kills_what_the_plugin_started(tmp_path):
    pid_file = tmp_path / "child.pid"
    (value,) = plugins.run(f"{T}:starts_a_sleeper", ["a"], [{"pid_file": str(pid_file)}], timeout_s=2, workers=1)
    assert value.reason == "reward_timeout"
    status = Path(f"/proc/{pid_file.read_text()}/status")
    deadline = time.monotonic() + 5
    while status.exists() and "zombie" not in status.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not status.exists() or "zombie" in status.read_text()  # gone (or dead, waiting for init to reap it)


def test_a_user_verifier_judges_through_the_route():
    """A `module:function` verifier: its value is the reward, correct at 1; failures are verdicts with reasons."""
    got = route.judge(["</think> 7", "</think> 8", "x"], ["7", "7", "7"], timeout_s=5, workers=2,
                      kinds=[f"{T}:answer_matches"] * 2 + [f"{T}:raises"], rows=[{"answer": 7}] * 3)
    assert [(r.reward, r.correct, r.reason) for r in got] == [(1.0, True, "correct"), (0.0, False, "wrong"),
                                                              (0.0, False, "reward_error")]


def test_a_user_verifier_that_fails_is_reported_by_name(capsys):
    from grpo.config import RewardConfig
    from grpo.data.prompts import Example
    from grpo.rollout.types import Completion, Group
    from grpo.stages.judge import Judge, score

    groups = [Group("Q", [1], [Completion([2], "x", [-0.1], "stop"), Completion([3], "y", [-0.1], "stop")])]
    (scores,) = score(groups, [Example("Q", "7", None, verifier=f"{T}:raises", row={"answer": 7})], Judge(),
                      RewardConfig(format_weight=0.0), max_new_tokens=8)
    assert [s["reason"] for s in scores] == ["reward_error"] * 2 and [s["reward"] for s in scores] == [0.0, 0.0]
    out = capsys.readouterr().out
    assert f"verifier {T}:raises failed 2 of 2 completions (2 reward_error): ValueError: cannot score 'x'" in out
    (scores,) = score(groups, [Example("Q", "7", None, verifier=f"{T}:returns_nan", row={})], Judge(),
                      RewardConfig(format_weight=0.0), max_new_tokens=8)
    assert all(math.isnan(s["reward"]) for s in scores)
    assert (f"verifier {T}:returns_nan returned NaN for 2 of 2 completions (an infrastructure failure): their "
            "groups are dropped" in capsys.readouterr().out)


def test_plugin_terms_join_the_weighted_sum():
    # accuracy 1 x 1.0 + format 1 x 0.5 + plug-ins 0.25 x 2.0 and -1 x 0.5  =  1 + 0.5 + 0.5 - 0.5  =  1.5
    # a NaN term stays NaN (its group is dropped)
    totals = combine([1.0, 0.0], [1.0, 0.0], [3, 3], accuracy_weight=1.0, format_weight=0.5, format_gate=False,
                     max_new_tokens=8, overlong_buffer=0, overlong_factor=1.0,
                     extra=[(2.0, [0.25, math.nan]), (0.5, [-1.0, 0.0])])
    assert totals[0] == pytest.approx(1.5, abs=1e-12) and math.isnan(totals[1])


def _grpo(run_dir: Path, base: Path, *extra: str) -> int:
    return train.main([f"run.dir={run_dir}", "run.stages=[grpo]", f"model.path={base}", "grpo.steps=2",
                       "grpo.warmup_steps=0", "grpo.eval_every=0", "grpo.eval_size=4", "grpo.prompts_per_step=4",
                       "grpo.group_size=4", "rollout.engine=hf", "rollout.max_new_tokens=40", "task.train_size=200",
                       "task.heldout_size=4", *extra])


def _lines(run_dir: Path, name: str) -> list[dict]:
    return [json.loads(line) for line in (run_dir / name).read_text().splitlines()]


def test_the_readme_example_trains_with_its_term_logged(tmp_path, base, monkeypatch):
    monkeypatch.chdir(ROOT)  # the example's module is found from the repository root, as the README says
    run_dir = tmp_path / "run"
    assert train.main(["--config", "examples/closeness.yaml", f"run.dir={run_dir}", f"model.path={base}",
                       "grpo.steps=2", "grpo.eval_every=0", "grpo.eval_size=4", "grpo.prompts_per_step=4",
                       "grpo.group_size=4", "rollout.engine=hf", "rollout.max_new_tokens=40",
                       "task.train_size=200", "task.heldout_size=4"]) == 0
    steps = [r for r in _lines(run_dir, "metrics.jsonl") if "reward/mean" in r]
    assert len(steps) == 2 and all(0.0 <= r["reward/closeness"] <= 1.0 for r in steps)
    samples = [s for s in _lines(run_dir, "samples.jsonl") if s.get("split") == "train"]
    assert samples and all("closeness" in s["terms"] for s in samples)


def test_plugins_that_hang_or_raise_leave_the_run_going_with_reasons(tmp_path, base, capsys):
    assert _grpo(tmp_path / "run", base, "reward.timeout_s=1",
                 f"reward.functions=[{{fn: '{T}:sleeps', weight: 1.0}}, {{fn: '{T}:raises', weight: 1.0}}]") == 0
    steps = [r for r in _lines(tmp_path / "run", "metrics.jsonl") if "reward/mean" in r]
    assert [r["step"] for r in steps] == [1, 2] and all(r["reward/sleeps"] == 0 and r["reward/raises"] == 0
                                                         for r in steps)
    out = capsys.readouterr().out
    assert f"reward sleeps ({T}:sleeps) failed 16 of 16 completions (16 reward_timeout)" in out
    assert f"reward raises ({T}:raises) failed 16 of 16 completions (16 reward_error): ValueError: cannot score" in out
    samples = [s for s in _lines(tmp_path / "run", "samples.jsonl") if s.get("split") == "train"]
    assert samples[0]["term_reasons"] == {"sleeps": "reward_timeout", "raises": "reward_error"}


def test_a_plugin_that_does_not_import_stops_the_run_before_training(tmp_path, base, capsys):
    assert _grpo(tmp_path / "run", base, "reward.functions=[{fn: 'nowhere_module:fn'}]") == 2
    err = capsys.readouterr().err
    assert "reward.functions[0].fn: 'nowhere_module:fn': module 'nowhere_module' does not import" in err
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def _lcb_rows(n: int) -> list[dict]:
    """Code problems in LiveCodeBench's format (a statement, public and private tests as JSON, the function name)."""
    return [{"question_content": r["problem"], **{k: v for k, v in r["answer"].items()}} for r in
            programs(n, split="train", seed=0)]


def test_a_livecodebench_jsonl_trains_with_sandbox_rewards_from_a_config_alone(tmp_path, base):
    data = tmp_path / "lcb.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in _lcb_rows(60)))
    run_dir = tmp_path / "run"
    assert _grpo(run_dir, base, "data.source=jsonl", f"data.path={data}", "data.prompt_field=question_content",
                 "data.verifier=code", "data.heldout_percent=20") == 0
    reasons = {s["reason"] for s in _lines(run_dir, "samples.jsonl")}
    assert reasons <= {"correct", "no_code", "compile_error", "runtime_error", "wrong_answer", "timeout"}
    assert reasons & {"no_code", "compile_error", "runtime_error", "wrong_answer"}  # judged in the sandbox, not math


def test_a_code_row_without_tests_is_refused_naming_it(tmp_path):
    data = tmp_path / "lcb.jsonl"
    rows = _lcb_rows(2)
    del rows[1]["public_test_cases"]
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    cfg = DataConfig(source="jsonl", path=str(data), prompt_field="question_content", verifier="code")
    with pytest.raises(DataError, match=r"lcb\.jsonl:2: not a code problem the sandbox can grade"):
        load_records(cfg, TaskConfig(), split="train", seed=0)


def test_a_file_without_a_heldout_section_keeps_its_heldout_rows_out_of_training(tmp_path):
    rows = [{"problem": f"What is {i} + 1?", "answer": str(i + 1)} for i in range(400)]
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    cfg = DataConfig(source="jsonl", path=str(data), heldout_percent=10)
    train_rows, report = load_records(cfg, TaskConfig(), split="train", seed=0, hold_out=True)
    heldout_rows, _ = load_records(cfg, TaskConfig(), split="heldout", seed=0, hold_out=True)
    train_q, heldout_q = {r["problem"] for r in train_rows}, {r["problem"] for r in heldout_rows}
    assert not train_q & heldout_q and len(train_q) + len(heldout_q) == 400
    assert report["held_out"] == len(heldout_q) and 20 <= len(heldout_q) <= 60  # about 10%, by a hash
    assert all(held_out(q, 10) for q in heldout_q)
