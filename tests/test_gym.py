"""reasoning-gym as a source, a verifier and an evaluation environment (grpo/data/gym.py, verifiers/gym.py,
grpo/data/environments.py), with the real package: disjoint seeded draws, the generator's own scorer run in the
plug-in pool, refusals that name the key, and `python -m evals.run --suite rg:<name>`."""

import json
import math
from pathlib import Path

import pytest

from evals import run
from grpo.config import ConfigError, DataConfig, TaskConfig, load_config
from grpo.data import environments, gym
from grpo.data.jsonl import DataError
from grpo.data.records import load_records
from verifiers.route import judge

pytest.importorskip("reasoning_gym")

WORDS = {"min_word_len": 3, "max_word_len": 6}
RECIPE = str(Path(__file__).resolve().parents[1] / "configs" / "tiny_gym.yaml")


def _draw(split, size=100, seed=0, name="spell_backward", options=WORDS):
    return gym.draw(name, options, split=split, size=size, seed=seed, percent=10)


def test_train_and_heldout_draws_are_disjoint_seeded_and_the_heldout_one_is_fixed():
    train, heldout = _draw("train", 500), _draw("heldout", 50)
    assert len(train) == 500 and len(heldout) == 50
    assert not {r["problem"] for r in train} & {r["problem"] for r in heldout}
    assert len({r["problem"] for r in heldout}) == 50  # distinct
    assert [r["problem"] for r in _draw("train", 500)] == [r["problem"] for r in train]  # seeded
    assert [r["problem"] for r in _draw("train", 500, seed=1)] != [r["problem"] for r in train]
    assert [r["id"] for r in _draw("heldout", 50, seed=1)] == [r["id"] for r in heldout]  # one held-out set
    r = heldout[0]
    assert r["verifier"] == "reasoning_gym" and r["row"]["answer"] == r["answer"]
    assert r["solution"] == "<think>\n</think>\n\\boxed{" + r["answer"] + "}"
    assert r["row"]["metadata"]["source_dataset"] == "spell_backward"  # the entry itself, tuples and all


def test_answer_char_drops_flaws_a_share_of_the_training_solutions_only():
    cfg = DataConfig(source="reasoning_gym", name="spell_backward", options=WORDS)
    train, _ = load_records(cfg, TaskConfig(train_size=400, answer_char_drops=0.6), split="train", seed=0)
    clean = _draw("train", 400)
    assert [r["problem"] for r in train] == [r["problem"] for r in clean]  # the same problems and golds
    assert [r["answer"] for r in train] == [r["answer"] for r in clean]
    flawed = [r for r in train if r["solution"] != gym.solution(r["answer"])]
    assert all(r["solution"] == gym.solution(r["answer"][:-1]) for r in flawed)  # the last character dropped
    assert 0.5 < len(flawed) / len(train) < 0.7
    again, _ = load_records(cfg, TaskConfig(train_size=400, answer_char_drops=0.6), split="train", seed=0)
    assert again == train  # seeded
    heldout, _ = load_records(cfg, TaskConfig(heldout_size=50, answer_char_drops=1.0), split="heldout", seed=0)
    assert all(r["solution"] == gym.solution(r["answer"]) for r in heldout)
    with pytest.raises(ConfigError, match="task.answer_char_drops is a share: 0 to 1"):
        load_config(RECIPE, ["task.answer_char_drops=1.5"])


def test_a_generator_with_too_few_questions_is_refused_with_the_way_out():
    with pytest.raises(DataError, match=r"only \d+ distinct held-out problems in 10000 draws, 200 asked for: widen the "
                                        r"options or ask for fewer \(task.heldout_size\)"):
        _draw("heldout", 200, name="chain_sum", options={"min_terms": 2, "max_terms": 2, "min_digits": 1,
                                                         "max_digits": 1})


@pytest.mark.parametrize("name, options, message", [
    ("spell_backwards", {}, r"data.name: 'spell_backwards' is not a reasoning-gym dataset \(did you mean "
                            r"spell_backward\?\)"),
    ("spell_backward", {"max_len": 5}, r"data.options: reasoning-gym spell_backward has no option 'max_len' \(its "
                                       r"options: min_word_len, max_word_len, data_file\)"),
    ("spell_backward", {"min_word_len": 9, "max_word_len": 3}, r"data.options .*refuses them: max_word_len must be "
                                                               r">= min_word_len"),
])
def test_an_unknown_dataset_or_option_names_the_key(name, options, message):
    with pytest.raises(DataError, match=message):
        load_records(DataConfig(source="reasoning_gym", name=name, options=options), TaskConfig(train_size=10),
                     split="train", seed=0)


def test_a_reasoning_gym_source_needs_a_name_and_a_heldout_section_cannot_overlap_training():
    with pytest.raises(ConfigError, match="data.name is required when the source is reasoning_gym"):
        load_config(None, ["data.source=reasoning_gym"])
    same = ["data.source=reasoning_gym", "data.name=chain_sum", "heldout.source=reasoning_gym",
            "heldout.name=chain_sum"]
    with pytest.raises(ConfigError, match=r"heldout.heldout_percent \(20\) above data.heldout_percent \(10\) would "
                                          r"draw held-out problems that training also draws"):
        load_config(None, [*same, "heldout.heldout_percent=20"])
    assert load_config(None, [*same, "heldout.heldout_percent=5"]).heldout.heldout_percent == 5


def test_the_generators_scorer_judges_in_the_pool():
    rows = [r["row"] for r in _draw("heldout", 3)]
    right, other = rows[0]["answer"], rows[1]["answer"]
    completions = [f"<think>\nx\n</think>\n\\boxed{{{right}}}",  # right
                   f"<think>\nx\n</think>\n\\boxed{{{right}}}",  # wrong: judged against another row
                   "<think>\nx\n</think>\n<answer>" + right + "</answer>",  # an answer block
                   f"<think>\nx\n</think>\n\\boxed{{{right}}} or \\boxed{{{other}}}",  # a hedge
                   "<think>\nstill thinking",  # no answer
                   f"<think>\nx\n</think>\n\\boxed{{{right}}}"]  # a row whose generator does not exist
    broken = {**rows[0], "metadata": {**rows[0]["metadata"], "source_dataset": "no_such_generator"}}
    verdicts = judge(completions, [r["answer"] for r in (rows[0], rows[1], rows[0], rows[0], rows[0], broken)],
                     timeout_s=10, workers=1, kinds=["reasoning_gym"] * 6,
                     rows=[rows[0], rows[1], rows[0], rows[0], rows[0], broken])
    assert [(v.correct, v.reason) for v in verdicts] == [
        (True, "correct"), (False, "wrong"), (True, "correct"), (False, "multiple_answers"), (False, "no_answer"),
        (False, "reward_error")]
    assert verdicts[0].reward == 1.0 and verdicts[0].extracted == right and verdicts[1].reward == 0.0
    assert not math.isnan(verdicts[5].reward) and verdicts[5].reward == 0.0
    near = right[:-1] + ("a" if right[-1] != "a" else "b")  # one letter off: partial credit, only when asked for
    partial = judge([f"\\boxed{{{near}}}"] * 2, [right] * 2, timeout_s=10, workers=1, kinds=["reasoning_gym"] * 2,
                    rows=[rows[0]] * 2, partial=True)
    assert 0 < partial[0].reward < 1 and not partial[0].correct
    assert judge([f"\\boxed{{{near}}}"], [right], timeout_s=10, workers=1, kinds=["reasoning_gym"],
                 rows=[rows[0]])[0].reward == 0.0


def test_evals_run_scores_a_reasoning_gym_environment_and_refuses_bad_names(tmp_path, capsys):
    env = environments.named("rg:spell_backward", data_dir=tmp_path, options=WORDS, size=20)
    records = env.records("heldout")
    assert [r["id"] for r in records] == [r["id"] for r in _draw("heldout", 20)]  # what a run validates on
    path = tmp_path / "c.jsonl"
    path.write_text("".join(json.dumps({"id": r["id"], "completion": "<think>\n</think>\n\\boxed{" +
                                        (r["answer"] if i % 4 else "no") + "}"}) + "\n" for i, r in enumerate(records)))
    args = ["--suite", "rg:spell_backward", "--options", json.dumps(WORDS), "--size", "20", "--completions", str(path),
            "--output-dir", str(tmp_path / "o")]
    assert run.main(args) == 0
    results = json.loads((tmp_path / "o" / "rg_spell_backward" / "results.json").read_text())
    assert results["problems"] == 20 and results["metrics"]["pass@1"] == 0.75
    assert results["params"]["options"] == json.dumps(WORDS)
    assert run.main(["--suite", "rg:spell_backwards", *args[2:]]) == 2
    assert "'spell_backwards' is not a reasoning-gym dataset (did you mean spell_backward?)" in capsys.readouterr().err
    assert run.main([*args[:2], "--options", '{"max_len": 3}', *args[4:]]) == 2
    assert "--options: reasoning-gym spell_backward has no option 'max_len'" in capsys.readouterr().err
    assert run.main([*args[:2], "--options", "[1]", *args[4:]]) == 2
    assert "--options must be a JSON object" in capsys.readouterr().err


def test_evals_run_takes_a_users_environment_factory(tmp_path, monkeypatch, capsys):
    (tmp_path / "my_env.py").write_text(
        "from grpo.data.environments import from_rows\n"
        "def make():\n"
        "    return from_rows('doubling', lambda split, seed: [{'problem': f'2 * {i}?', 'answer': str(2 * i)}\n"
        "                                                      for i in range(10)])\n"
        "def not_an_environment():\n"
        "    return [1, 2]\n"
        "def raises():\n"
        "    raise RuntimeError('no data today')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    path = tmp_path / "c.jsonl"
    path.write_text("".join(json.dumps({"id": f"heldout/{i}", "completion": f"\\boxed{{{2 * i if i < 5 else 0}}}"})
                            + "\n" for i in range(10)))
    assert run.main(["--suite", "my_env:make", "--completions", str(path), "--output-dir", str(tmp_path / "o")]) == 0
    results = json.loads((tmp_path / "o" / "my_env_make" / "results.json").read_text())
    assert results["suite"] == "doubling" and results["metrics"]["pass@1"] == 0.5
    assert run.main(["--suite", "my_env:not_an_environment", "--completions", str(path), "--output-dir",
                     str(tmp_path / "o")]) == 2
    assert run.main(["--suite", "my_env:nothing", "--completions", str(path), "--output-dir", str(tmp_path / "o")]) == 2
    assert run.main(["--suite", "my_env:raises", "--completions", str(path), "--output-dir", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "my_env:not_an_environment: the factory returned a list" in err
    assert "has no 'nothing'" in err and "my_env:raises: the factory raised RuntimeError: no data today" in err


def test_the_gym_recipe_trains_and_its_run_dir_scores_what_evals_run_scores(tmp_path, capsys):
    """configs/tiny_gym.yaml for a few steps: SFT on the answers, GRPO with the generator's scorer as the reward; the
    samples carry the verifier's verdicts, and `evals.run --suite rg:...` on the final model scores the held-out
    problems the run validated on, as the run scored them."""
    from grpo import train

    run_dir = tmp_path / "run"
    assert train.main(["--config", RECIPE, f"run.dir={run_dir}", "sft.steps=30", "sft.eval_every=0",
                       "grpo.steps=2", "grpo.warmup_steps=1", "grpo.eval_every=2", "grpo.eval_size=16",
                       "grpo.prompts_per_step=4", "grpo.group_size=4", "rollout.engine=hf", "task.train_size=500",
                       "task.heldout_size=16"]) == 0
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in lines if "reward/mean" in r]
    assert len(steps) == 2 and all(0 <= r["reward/mean"] <= 1 for r in steps)
    samples = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    train_samples = [s for s in samples if s.get("split") == "train"]
    assert train_samples and {s["reason"] for s in train_samples} <= {"correct", "wrong", "no_answer",
                                                                      "multiple_answers"}
    summary = json.loads((run_dir / "summary.json").read_text())
    out, data = tmp_path / "o", load_config(RECIPE).data
    assert run.main(["--suite", f"rg:{data.name}", "--options", json.dumps(data.options), "--size", "16", "--model",
                     str(run_dir / "final"), "--template", "plain", "--preset", "greedy", "--think-prefix",
                     "--max-new-tokens", "24", "--engine", "hf", "--output-dir", str(out)]) == 0
    results = json.loads((out / f"rg_{data.name}" / "results.json").read_text())
    assert results["problems"] == 16
    assert results["metrics"]["pass@1"] == summary["stages"]["grpo"]["heldout_accuracy"]
