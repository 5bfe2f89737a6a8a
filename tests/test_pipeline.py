"""The R1 pipeline's stages (generate, filter, distill, eval) on tiny data: outputs, planted contamination,
skip and resume after a kill, and the pure pieces (forward KL, shard seeds, the program task, verifier dispatch)."""

import dataclasses
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from grpo import train
from grpo.data import tasks
from grpo.data.decontaminate import words
from grpo.learner.supervised import forward_kl
from grpo.stages.generate import hash_seed
from verifiers.route import judge

ROOT = Path(__file__).resolve().parent.parent
# an easy task (two one-digit steps) so a short cold start already solves some problems
TASK = ["task.digits=1", "task.ops=2", "task.train_size=600", "task.heldout_size=16", "prompt.template=plain",
        "rollout.engine=hf", "rollout.max_new_tokens=40", "reward.workers=1"]
PIPELINE = [*TASK, "generate.problems=24", "generate.n=4", "generate.shard_size=8", "generate.temperature=1.0",
            "generate.top_p=1.0", "filter.decontaminate=[]", "distill.sft.steps=12", "distill.sft.warmup_steps=2",
            "distill.sft.batch_size=8", "distill.sft.eval_every=0", "distill.sft.eval_size=16",
            "distill.sft.max_new_tokens=40", "distill.sft.log_every=4", "eval.size=16"]


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("teacher")
    assert train.main([f"run.dir={run_dir}", "run.stages=[sft]", *TASK, "sft.steps=150", "sft.warmup_steps=10",
                       "sft.eval_every=0", "sft.eval_size=16", "sft.max_new_tokens=40"]) == 0
    return run_dir / "final"


def _pipeline(run_dir: Path, teacher: Path, *extra: str) -> list[str]:
    return [f"run.dir={run_dir}", f"model.path={teacher}", "run.stages=[generate,filter,distill,eval]",
            *PIPELINE, *extra]


def _summary(run_dir: Path) -> dict:
    summary = json.loads((run_dir / "summary.json").read_text())
    drop = {"seconds", "baseline_seconds", "tokens_per_s"}

    def clean(x):
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items() if k not in drop and k not in ("final", "baseline_final", "out")}
        return [clean(v) for v in x] if isinstance(x, list) else x

    return clean(summary["stages"])


def test_forward_kl_by_hand():
    teacher = torch.tensor([0.0, 0.0])  # p_t = (1/2, 1/2)
    student = torch.tensor([0.0, math.log(3.0)])  # p_s = (1/4, 3/4)
    expected = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)  # = 0.5 ln(4/3)
    assert forward_kl(student, teacher).item() == pytest.approx(expected, abs=1e-6)
    assert forward_kl(teacher, teacher).item() == pytest.approx(0.0, abs=1e-7)
    # a temperature divides both logits: T = 2 on doubled logits equals T = 1 on the originals
    assert forward_kl(2 * student, 2 * teacher, 2.0).item() == pytest.approx(expected, abs=1e-6)
    assert forward_kl(student, teacher).item() != pytest.approx(forward_kl(teacher, student).item(), abs=1e-3)


def test_shard_seeds_differ_per_shard_and_repeat_per_run():
    assert len({hash_seed(0, k) for k in range(1000)}) == 1000
    assert hash_seed(3, 7) == hash_seed(3, 7) != hash_seed(4, 7)


def test_program_task_splits_and_gold_solutions_pass_the_sandbox():
    train_rows = tasks.programs(200, split="train", seed=0)
    held = tasks.programs(40, split="heldout", seed=0)
    assert not {r["problem"] for r in train_rows} & {r["problem"] for r in held}
    assert tasks.programs(200, split="train", seed=0) == train_rows
    rows = held[:4]
    results = judge([r["solution"] for r in rows], [r["answer"] for r in rows], timeout_s=5.0, workers=2)
    assert all(r.correct for r in results)
    # a program that only memorises the three shown examples fails the tests the prompt does not show
    first = rows[0]
    shown = {int(t["input"]): int(t["output"]) for t in first["answer"]["public_test_cases"][:3]}
    table = f"<think>\n</think>\n```python\ndef f(x):\n    return {shown!r}.get(x, 0)\n```"
    (result,) = judge([table], [first["answer"]], timeout_s=5.0, workers=1)
    assert not result.correct and result.reason == "wrong_answer"
    (partial,) = judge([table], [first["answer"]], timeout_s=5.0, workers=1, partial=True)  # reward.code_partial
    assert partial.reward == pytest.approx(0.5) and not partial.correct  # the 3 shown inputs pass, 3 unseen fail
    with pytest.raises(ValueError, match="distinct train program problems"):
        tasks.programs(4500, split="train", seed=0)


def test_judge_sends_each_gold_to_its_verifier_in_order():
    code = tasks.programs(1, split="train", seed=1)[0]
    results = judge(["\\boxed{4}", code["solution"], "\\boxed{5}", "no code"], ["4", code["answer"], "4",
                                                                               code["answer"]],
                    timeout_s=5.0, workers=2)
    assert [r.correct for r in results] == [True, True, False, False]
    assert results[3].reason == "no_code"


def test_the_pipeline_writes_each_stage_and_finds_planted_contamination(tmp_path, teacher):
    run_dir = tmp_path / "run"
    planted = tmp_path / "suites"
    planted.mkdir()
    records = tasks.arithmetic(2, split="train", seed=0, digits=1, ops=2, operators="+-")
    # an evaluation suite that copies the first training problem (punctuation and case changed)
    (planted / "math500.jsonl").write_text(json.dumps({"unique_id": "planted/1", "answer": records[0]["answer"],
                                                       "problem": records[0]["problem"].upper().replace("(", " ")})
                                           + "\n")
    assert train.main(_pipeline(run_dir, teacher, "filter.decontaminate=[math500,gsm8k]",
                                f"filter.data_dir={planted}")) == 0
    shards = sorted((run_dir / "generate").glob("shard_*.jsonl"))
    assert [p.name for p in shards] == ["shard_00000.jsonl", "shard_00001.jsonl", "shard_00002.jsonl"]
    traces = [json.loads(line) for p in shards for line in p.read_text().splitlines()]
    assert len(traces) == 24 * 4
    assert set(traces[0]) >= {"problem_id", "problem", "answer", "completion", "extracted", "correct", "reason",
                              "length", "finish_reason"}
    assert any(t["correct"] for t in traces), "the teacher solves none: the test says nothing about filtering"
    report = json.loads((run_dir / "filter" / "report.json").read_text())
    # every trace of the planted problem, and only those (operators are not words: a problem with the same
    # numbers in the same order counts as the same text)
    copies = 4 * sum(words(t["problem"]) == words(records[0]["problem"]) for t in traces[::4])
    assert copies >= 4 and report["removed"]["contaminated"] == copies
    assert report["contaminated_by_suite"] == {"math500": copies}
    assert report["suites_missing"] == ["gsm8k"]
    assert report["examples"]["contaminated"][0]["why"].startswith("math500 planted/1")
    kept = [json.loads(line) for line in (run_dir / "filter" / "traces.jsonl").read_text().splitlines()]
    assert kept and all(t["correct"] and t["finish_reason"] == "stop" for t in kept)
    assert all(t["problem_id"] != 0 for t in kept)
    assert report["kept"] == len(kept) and sum(report["removed"].values()) + len(kept) == len(traces)
    stages = json.loads((run_dir / "summary.json").read_text())["stages"]
    assert list(stages) == ["generate", "filter", "distill", "eval"]
    assert all("heldout_accuracy" in entry for entry in stages.values())
    distill = stages["distill"]
    assert distill["parameters"] * 4 <= distill["teacher_parameters"]
    assert "baseline_heldout_accuracy" in distill
    assert set(stages["eval"]["models"]) == {"final", "student", "baseline"}
    assert stages["eval"]["models"]["student"]["heldout_accuracy"] == distill["heldout_accuracy"]
    for name in ("student", "baseline"):
        assert (run_dir / "distill" / name / "model.safetensors").exists()
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert {m["stage"] for m in metrics} == {"distill", "distill_baseline", "eval"}


def test_logit_distillation_trains_the_student(tmp_path, teacher):
    run_dir = tmp_path / "run"
    assert train.main(_pipeline(run_dir, teacher, "run.stages=[generate,filter,distill]", "distill.kd_coef=0.5",
                                "distill.baseline=false")) == 0
    distill = json.loads((run_dir / "summary.json").read_text())["stages"]["distill"]
    assert "baseline_heldout_accuracy" not in distill
    losses = [json.loads(line)["loss/sft"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()
              if json.loads(line).get("stage") == "distill" and "loss/sft" in json.loads(line)]
    assert len(losses) == 3 and losses[-1] < losses[0]


@pytest.mark.parametrize("when", ["generate", "distill"])
def test_kill_mid_stage_then_resume_gives_the_same_outputs(tmp_path, teacher, when):
    straight = tmp_path / "straight"
    assert train.main(_pipeline(straight, teacher)) == 0
    killed = tmp_path / "killed"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "grpo.train", *_pipeline(killed, teacher)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    marker = killed / ("generate/shard_00000.jsonl" if when == "generate" else "metrics.jsonl")
    deadline = time.monotonic() + 300
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert marker.exists(), f"the run ended or stalled before {marker} appeared"
    assert not (killed / "summary.json").exists() or "eval" not in json.loads(
        (killed / "summary.json").read_text())["stages"]
    assert train.main(["--resume", str(killed)]) == 0
    for shard in sorted((straight / "generate").glob("shard_*.jsonl")):
        assert (killed / "generate" / shard.name).read_text() == shard.read_text()
    assert (killed / "filter" / "traces.jsonl").read_text() == (straight / "filter" / "traces.jsonl").read_text()
    for name in ("student", "baseline"):
        a = load_file(straight / "distill" / name / "model.safetensors")
        b = load_file(killed / "distill" / name / "model.safetensors")
        assert all(torch.equal(a[k], b[k]) for k in a)
    assert _summary(killed) == _summary(straight)
    logged = [json.loads(line) for line in (killed / "metrics.jsonl").read_text().splitlines()]
    expected = [json.loads(line) for line in (straight / "metrics.jsonl").read_text().splitlines()]
    strip = lambda rows: [{k: v for k, v in r.items() if not k.startswith("perf/")} for r in rows]  # noqa: E731
    assert strip(logged) == strip(expected)


def test_shards_sampled_with_other_settings_are_not_taken_for_these(tmp_path, teacher):
    """generate/settings.json records what the shards were sampled with: a re-run that would cut the problems into
    other shards (or sample them otherwise) is refused, naming the change, instead of keeping shards that now
    stand for other problems."""
    from grpo.config import ConfigError, GenerateConfig, PromptConfig
    from grpo.data.prompts import to_examples
    from grpo.model import load
    from grpo.rollout import HFEngine
    from grpo.stages.generate import read_traces, run_generate
    from grpo.stages.judge import Judge

    model, tokenizer = load(str(teacher))
    examples = to_examples(tasks.arithmetic(12, split="train", seed=0, digits=1, ops=2), tokenizer,
                           PromptConfig(template="plain", think_prefix=False))
    engine, run = HFEngine(model, tokenizer), dict(judge=Judge(workers=1), max_new_tokens=16, seed=0)
    cfg = GenerateConfig(problems=12, n=2, shard_size=4, temperature=1.0, top_p=1.0)
    first = run_generate(engine, examples, cfg, tmp_path, **run)
    assert first["shards"] == 3 and first["traces"] == 24
    again = run_generate(engine, examples, cfg, tmp_path, **run)  # the same settings: every shard kept
    assert again["traces"] == 24
    with pytest.raises(ConfigError, match=r"sampled with other settings \(shard_size 4 -> 6\)"):
        run_generate(engine, examples, GenerateConfig(problems=12, n=2, shard_size=6, temperature=1.0, top_p=1.0),
                     tmp_path, **run)
    assert len(list(read_traces(tmp_path))) == 24


def test_a_distill_student_stopped_mid_stage_continues_from_its_checkpoint(tmp_path, teacher, monkeypatch):
    """distill.sft.save_every: a student stopped inside step 6 resumes at step 4 (8 more steps, then the
    baseline's 12) and ends with the same weights as a student that never stopped."""
    from crashes import count_calls, interrupt

    import grpo.learner.policy

    args = ["run.stages=[generate,filter,distill]", "distill.sft.save_every=4"]
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    assert train.main(_pipeline(straight, teacher, *args)) == 0
    interrupt(monkeypatch, grpo.learner.policy, "train_step", at=6)
    with pytest.raises(KeyboardInterrupt):
        train.main(_pipeline(killed, teacher, *args))
    assert (killed / "checkpoints" / "distill" / "step_4" / "trainer_state.pt").exists()
    after = count_calls(monkeypatch, grpo.learner.policy, "train_step")
    assert train.main(["--resume", str(killed)]) == 0
    assert after["n"] == 8 + 12
    for name in ("student", "baseline"):
        a = load_file(straight / "distill" / name / "model.safetensors")
        b = load_file(killed / "distill" / name / "model.safetensors")
        assert all(torch.equal(a[k], b[k]) for k in a)
    rows = lambda d: [{k: v for k, v in json.loads(line).items() if not k.startswith("perf/")}  # noqa: E731
                      for line in (d / "metrics.jsonl").read_text().splitlines()]
    assert rows(killed) == rows(straight)


def test_pipeline_config_errors_name_the_key(tmp_path, capsys):
    assert train.main([f"run.dir={tmp_path}", "run.stages=[distill,generate]"]) == 2
    assert "run.stages" in capsys.readouterr().err
    assert train.main([f"run.dir={tmp_path}", "run.stages=[filter]"]) == 2
    assert "no traces to filter" in capsys.readouterr().err
    assert train.main([f"run.dir={tmp_path}", "run.stages=[distill]"]) == 2
    assert "run the generate and filter stages first" in capsys.readouterr().err


def test_r1_tiny_distils_the_default_recipes_teacher_into_a_quarter_size_student():
    from grpo.config import load_config
    from grpo.model import PRESETS, build_model, build_tokenizer, parameter_count

    r1, default = load_config(ROOT / "configs" / "r1_tiny.yaml"), load_config(ROOT / "configs" / "tiny.yaml")
    for section in ("model", "data", "task", "prompt", "rollout", "reward", "sft"):
        assert getattr(r1, section) == getattr(default, section), section
    # the one change its header gives: a longer GRPO stage (the teacher), evaluated less often
    assert dataclasses.replace(r1.grpo, steps=default.grpo.steps, eval_every=default.grpo.eval_every) == default.grpo
    assert r1.grpo.steps > default.grpo.steps and r1.task.answer_sign_drops > 0
    assert r1.run.stages == ["sft", "grpo", "generate", "filter", "distill", "eval"]
    tokenizer = build_tokenizer()
    student = parameter_count(build_model(r1.distill.student_preset, tokenizer))
    assert r1.distill.student_preset in PRESETS and 4 * student <= parameter_count(build_model("tiny", tokenizer))


def test_answer_signs_breakdown_splits_wrong_answers_by_a_dropped_minus():
    from bench.answer_signs import breakdown

    samples = [{"gold": "-5", "extracted": "-5", "correct": True}, {"gold": "-5", "extracted": "5", "correct": False},
               {"gold": "-12", "extracted": "2", "correct": False}, {"gold": "7", "extracted": "-7", "correct": False},
               {"gold": "0", "extracted": "0", "correct": True}]
    assert breakdown(samples) == {"negative": {"problems": 3, "right": 1, "sign_dropped": 1, "other_wrong": 1},
                                  "other": {"problems": 2, "right": 1, "sign_dropped": 0, "other_wrong": 1}}
