"""`python -m evals.run` through its full path: reference solutions of the real suites graded from a
completions file, bad input, and a tiny model evaluated end to end on a small slice."""

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from engines import ENGINES

from evals import run
from grpo.data.suites import SUITES, data_dir, load_rows

DATA = data_dir()
needs_data = pytest.mark.skipif(not (DATA / "math500.jsonl").exists(), reason=f"no benchmark data at {DATA}")


def _completions(tmp_path, suite, completion_of):
    path = tmp_path / f"{suite}.jsonl"
    s = SUITES[suite]
    rows = load_rows(s, DATA)
    path.write_text("".join(json.dumps({"id": s.id_of(r, r["_index"]), "completion": completion_of(r)}) + "\n"
                            for r in rows))
    return path


def _score(tmp_path, suite, completion_of):
    path = _completions(tmp_path, suite, completion_of)
    assert run.main(["--suite", suite, "--completions", str(path), "--output-dir", str(tmp_path / "out")]) == 0
    results = json.loads((tmp_path / "out" / suite / "results.json").read_text())
    assert results["suite"] == suite and results["n"] == 1
    return results


def fenced(code):
    return f"```python\n{code}\n```"


@needs_data
def test_math500_reference_solutions_score_at_least_99_percent(tmp_path):
    results = _score(tmp_path, "math500", lambda r: r["solution"])
    assert results["problems"] == 500 and results["metrics"]["pass@1"] >= 0.99
    assert set(results["breakdowns"]) == {"subject", "level"}
    report = (tmp_path / "out" / "math500" / "report.md").read_text()
    assert report.startswith("# math500") and "![by_level](by_level.png)" in report
    for name in ("lengths", "by_subject", "by_level"):
        assert (tmp_path / "out" / "math500" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"


@needs_data
def test_gsm8k_reference_answers_score_at_least_99_5_percent(tmp_path):
    results = _score(tmp_path, "gsm8k", lambda r: r["answer"])
    assert results["problems"] == 1319 and results["metrics"]["pass@1"] >= 0.995


@needs_data
def test_humaneval_canonical_solutions_all_pass(tmp_path):
    results = _score(tmp_path, "humaneval", lambda r: fenced(r["prompt"] + r["canonical_solution"]))
    assert results["problems"] == 164 and results["metrics"]["pass@1"] == 1.0


@needs_data
def test_mbpp_reference_code_passes(tmp_path):
    results = _score(tmp_path, "mbpp", lambda r: fenced(r["code"]))
    samples = [json.loads(line) for line in (tmp_path / "out" / "mbpp" / "samples.jsonl").read_text().splitlines()]
    # 367, 601, 927 pass class instances to the solution, which the harness's value-only calls cannot carry
    assert {s["id"] for s in samples if not s["correct"]} <= {"367", "601", "927"}
    assert results["metrics"]["pass@1"] >= 971 / 974


@needs_data
def test_completions_files_are_checked_line_by_line(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"id": "test/precalculus/807.json", "completion": "\\boxed{1}"}) + "\n" +
                   json.dumps({"id": "no-such-id", "completion": "x"}) + "\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:2: id 'no-such-id' is not in the suite"):
        run.main(["--suite", "math500", "--completions", str(bad), "--output-dir", str(tmp_path / "o")])
    bad.write_text('{"id": "test/precalculus/807.json"}\n')
    with pytest.raises(ValueError, match="bad.jsonl:1: needs an 'id' and a string 'completion'"):
        run.main(["--suite", "math500", "--completions", str(bad), "--output-dir", str(tmp_path / "o")])
    assert run.main(["--suite", "math5000", "--completions", str(bad), "--output-dir", str(tmp_path / "o")]) == 2
    assert "unknown suite 'math5000'" in capsys.readouterr().err


@needs_data
def test_several_samples_per_problem_give_pass_at_k_and_maj_at_k(tmp_path):
    s = SUITES["gsm8k"]
    rows = load_rows(s, DATA, limit=3)
    lines = []
    for r in rows:  # sample 1 right, samples 2 and 3 the same wrong answer
        gold = s.gold_of(r)
        for answer in (gold, "-1", "-1"):
            lines.append(json.dumps({"id": s.id_of(r, r["_index"]), "completion": f"\\boxed{{{answer}}}"}))
    path = tmp_path / "three.jsonl"
    path.write_text("\n".join(lines) + "\n")
    assert run.main(["--suite", "gsm8k", "--completions", str(path), "--output-dir", str(tmp_path / "o"),
                     "--limit", "3"]) == 0
    m = json.loads((tmp_path / "o" / "gsm8k" / "results.json").read_text())["metrics"]
    assert m["pass@1"] == pytest.approx(1 / 3) and m["pass@2"] == pytest.approx(1 - 1 / 3) and m["pass@3"] == 1.0
    assert m["maj@3"] == 0.0 and m["maj@2"] == 1.0  # a 1-1 tie goes to the first answer
    assert (tmp_path / "o" / "gsm8k" / "pass_at_k.png").exists()


@needs_data
def test_a_tiny_model_is_evaluated_end_to_end(tmp_path, base):
    assert run.main(["--suite", "gsm8k", "--model", str(base), "--output-dir", str(tmp_path / "o"), "--limit", "4",
                     "--n", "2", "--max-new-tokens", "24"]) == 0
    results = json.loads((tmp_path / "o" / "gsm8k" / "results.json").read_text())
    assert results["n"] == 2 and results["problems"] == 4
    assert results["params"]["temperature"] == 0.6 and results["params"]["top_p"] == 0.95
    assert results["metrics"]["truncation_rate"] > 0 and 0 <= results["metrics"]["pass@1"] <= 1
    samples = (tmp_path / "o" / "gsm8k" / "samples.jsonl").read_text().splitlines()
    assert len(samples) == 8


def test_a_run_dir_is_evaluated_exactly_as_training_evaluated_it(tmp_path, base):
    run_dir = base.parent
    assert run.main(["--run-dir", str(run_dir), "--output-dir", str(tmp_path / "o")]) == 0
    results = json.loads((tmp_path / "o" / "heldout" / "results.json").read_text())
    summary = json.loads((run_dir / "summary.json").read_text())
    assert results["metrics"]["pass@1"] == summary["stages"]["sft"]["heldout_accuracy"]
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    last_eval = [r for r in lines if "eval/heldout/pass@1" in r][-1]
    assert last_eval["eval/heldout/pass@1"] == results["metrics"]["pass@1"]
    assert last_eval["eval/heldout/pass@1_se"] == results["metrics"]["pass@1_se"]
    ours = [json.loads(line) for line in (tmp_path / "o" / "heldout" / "samples.jsonl").read_text().splitlines()]
    logged = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    final = [s for s in logged if s["stage"] == "sft" and s["step"] == summary["stages"]["sft"]["steps"]]
    assert final and [s["completion"] for s in ours[: len(final)]] == [s["completion"] for s in final]


def test_a_directory_that_is_not_a_run_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="no config.yaml"):
        run.main(["--run-dir", str(tmp_path), "--output-dir", str(tmp_path / "o")])


@ENGINES
def test_sampled_validation_in_training_equals_the_offline_evaluation(tmp_path, base, engine):
    """The R1 protocol during GRPO (T 0.6, top-p 0.95, n samples through the rollout engine) and
    `evals.run --run-dir` on the final model give the same pass@1, pass@k and maj@k."""
    from grpo import train

    run_dir = tmp_path / "run"
    assert train.main([f"run.dir={run_dir}", "run.stages=[grpo]", f"model.path={base}", "grpo.steps=2",
                       "task.train_size=300", "task.heldout_size=6", "rollout.max_new_tokens=32",
                       "grpo.prompts_per_step=2", "grpo.group_size=4", "grpo.eval_size=6", "grpo.eval_every=0",
                       "grpo.lr=1e-3", "grpo.warmup_steps=0", "grpo.eval_n=4", "grpo.eval_temperature=0.6",
                       "grpo.eval_top_p=0.95",
                       f"rollout.engine={engine}"]) == 0
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in lines if "eval/heldout/pass@1" in r]
    assert [r["step"] for r in evals] == [0, 2]
    assert {"eval/heldout/pass@4", "eval/heldout/maj@4", "eval/heldout/pass@2_se"} <= evals[-1].keys()
    assert run.main(["--run-dir", str(run_dir), "--output-dir", str(tmp_path / "o")]) == 0
    results = json.loads((tmp_path / "o" / "heldout" / "results.json").read_text())
    assert results["n"] == 4 and results["problems"] == 6
    assert results["params"]["decoding"] == "sampled" and results["params"]["temperature"] == 0.6
    for k in ("pass@1", "pass@2", "pass@4", "maj@4"):
        assert results["metrics"][k] == evals[-1][f"eval/heldout/{k}"], k
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["stages"]["grpo"]["heldout_accuracy"] == results["metrics"]["pass@1"]


def test_greedy_evaluation_refuses_several_samples():
    from grpo.config import ConfigError, load_config
    from grpo.stages.evaluate import EvalProtocol, heldout_accuracy
    from grpo.stages.judge import Judge
    from grpo.train import DEFAULT_RECIPE

    with pytest.raises(ConfigError, match="grpo.eval_n"):
        load_config(DEFAULT_RECIPE, ["grpo.eval_n=4"])
    with pytest.raises(ValueError, match="needs the rollout engine"):
        heldout_accuracy(None, None, [SimpleNamespace(prompt="1+1=", answer="2")], max_new_tokens=4, judge=Judge(),
                         protocol=EvalProtocol(n=2, temperature=0.6))


LEAP_YEAR = "Y = int(input())\nprint(366 if Y % 4 == 0 and (Y % 100 != 0 or Y % 400 == 0) else 365)\n"
ROADS = """from collections import deque

class Solution:
    def shortestDistanceAfterQueries(self, n, queries):
        adj = [[i + 1] for i in range(n - 1)] + [[]]
        out = []
        for u, v in queries:
            adj[u].append(v)
            dist = [-1] * n
            dist[0] = 0
            todo = deque([0])
            while todo:
                x = todo.popleft()
                for y in adj[x]:
                    if dist[y] < 0:
                        dist[y] = dist[x] + 1
                        todo.append(y)
            out.append(dist[n - 1])
        return out
"""


@needs_data
def test_livecodebench_at_n16_from_a_completions_file(tmp_path):
    """Stdin (AtCoder) and functional (LeetCode) problems, 16 samples each, through the sandbox: pass@k from
    the right counts, the difficulty breakdown, the public-tests-only note, and the date window filter."""
    fence = "Here is my program.\n```python\n{}```\n"
    lines = [{"id": "abc365_a", "completion": fence.format(LEAP_YEAR if i < 12 else "print(365)\n")}
             for i in range(16)]
    lines += [{"id": "3517", "completion": fence.format(ROADS if i < 4 else "class Solution:\n    pass\n")}
              for i in range(16)]
    path = tmp_path / "lcb.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    out = tmp_path / "o"
    assert run.main(["--suite", "livecodebench", "--completions", str(path), "--output-dir", str(out),
                     "--workers", "2"]) == 0
    results = json.loads((out / "livecodebench" / "results.json").read_text())
    m = results["metrics"]
    assert results["n"] == 16 and results["problems"] == 2
    # the suite's other problems had no completion: said, and recorded with the parameters
    assert results["params"]["without_completions"] > 0
    assert m["pass@1"] == pytest.approx((12 / 16 + 4 / 16) / 2)
    assert m["pass@16"] == 1.0 and "maj@16" not in m
    assert m["pass@2"] == pytest.approx((1 - (4 * 3) / (16 * 15) + 1 - (12 * 11) / (16 * 15)) / 2)
    assert set(results["breakdowns"]["difficulty"]) == {"easy", "medium"}
    assert results["breakdowns"]["platform"]["atcoder"]["pass@1"] == pytest.approx(0.75)
    assert "public tests only" in results["note"]
    # the date window: abc365 (2024-08-03) and weekly-contest-409 (2024-08-03) both fall before 2024-09-01
    assert run.main(["--suite", "livecodebench", "--completions", str(path), "--output-dir", str(out),
                     "--date-from", "2024-09-01"]) == 2


def test_paired_comparison_counts_each_problem_once(tmp_path, base, capsys):
    from evals.paired import main as paired
    from grpo.model import build_model, build_tokenizer

    scratch = tmp_path / "scratch"
    tokenizer = build_tokenizer()
    build_model("tiny", tokenizer, seed=3).save_pretrained(scratch)
    tokenizer.save_pretrained(scratch)
    recipe = str(Path(__file__).resolve().parents[1] / "configs" / "tiny.yaml")
    assert paired(["--config", recipe, str(base), str(base), "--size", "6"]) == 0
    same = json.loads(capsys.readouterr().out)
    assert same["only_a"] == same["only_b"] == 0 and same["mcnemar_p"] == 1.0
    assert same["accuracy_a"] == same["accuracy_b"] and same["problems"] == 6
    assert paired(["--config", recipe, str(base), str(scratch), "--size", "6"]) == 0
    other = json.loads(capsys.readouterr().out)
    assert other["both"] + other["only_a"] == round(other["accuracy_a"] * 6)
    assert other["both"] + other["only_b"] == round(other["accuracy_b"] * 6)
    assert paired(["--config", recipe, str(base), str(tmp_path / "nope"), "--size", "6"]) == 2
    assert "no such local directory" in capsys.readouterr().err


def test_a_model_whose_context_cannot_hold_the_prompts_is_refused_with_the_way_out(tmp_path, capsys):
    """`python -m evals.run --suite gsm8k --model <a 512-token tiny model>` used to end in a traceback."""
    from grpo.model import build_model, build_tokenizer

    if not (data_dir() / "gsm8k_test.jsonl").exists():
        pytest.skip(f"no benchmark data at {data_dir()}")
    tokenizer = build_tokenizer()
    build_model("micro", tokenizer, max_position_embeddings=64).save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    assert run.main(["--suite", "gsm8k", "--model", str(tmp_path / "model"), "--output-dir", str(tmp_path / "o"),
                     "--limit", "2", "--preset", "greedy", "--engine", "hf"]) == 2
    err = capsys.readouterr().err
    assert "fills the model's context (64 tokens" in err and "model.max_position_embeddings=2048" in err


def test_an_answer_written_before_the_thinking_ends_is_not_the_answer():
    """A prompt that opened <think>: its completions are judged behind it, as training judges them, so a \\boxed{}
    in a completion cut off mid-thought does not count."""
    record = {"id": "1", "answer": "5", "verifier": "math", "row": {}}
    cut = {"1": [{"completion": "Try x=5, so maybe \\boxed{5}. Hmm, let me check again whether"}]}
    done = {"1": [{"completion": "Try x=5.\n</think>\nThe answer is \\boxed{5}."}]}
    verdict = lambda samples, opened: run.grade([record], samples, workers=1, timeout_s=5,  # noqa: E731
                                                think_opened=opened)[0]["samples"][0]["correct"]
    assert verdict(cut, False) and not verdict(cut, True) and verdict(done, True)


def test_a_run_checkpoint_is_measured_under_the_plan_of_the_stage_that_trained_it(tmp_path):
    import torch

    from evals.heldout import trained_by

    assert trained_by(tmp_path, "checkpoints/sft/step_4", ["sft", "grpo"]) == "sft"
    assert trained_by(tmp_path, "checkpoints/grpo/step_2", ["sft", "grpo", "eval"]) == "grpo"
    assert trained_by(tmp_path, "final", ["sft", "grpo", "eval", "distill"]) == "grpo"  # the last that trains
    (tmp_path / "final").mkdir()
    torch.save({"stage": "sft"}, tmp_path / "final" / "trainer_state.pt")  # a run stopped before its grpo stage
    assert trained_by(tmp_path, "final", ["sft", "grpo"]) == "sft"
