"""The README's bad-input table, row by row: `python -m grpo.train` refuses with exit code 2 and a message that
names the file, key or row, before anything is trained or written over."""

import json
import re
import shutil

import pytest

from grpo import train
from grpo.config import PromptConfig
from grpo.data.prompts import render_prompt
from grpo.model import build_tokenizer

THINK_TEMPLATE_TAIL = "<think>\n"


def _data(tmp_path, lines):
    path = tmp_path / "data.jsonl"
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


def _recipe(tmp_path, text):
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    return path


def _think_model(tmp_path, base):
    """The test model with a chat template that opens the think block itself (as R1-distill's does)."""
    model = tmp_path / "think-model"
    shutil.copytree(base, model)
    config = json.loads((model / "tokenizer_config.json").read_text())
    template = config.get("chat_template") or (model / "chat_template.jinja").read_text()
    template += "{% if add_generation_prompt %}" + THINK_TEMPLATE_TAIL + "{% endif %}"
    if "chat_template" in config:
        config["chat_template"] = template
        (model / "tokenizer_config.json").write_text(json.dumps(config))
    else:
        (model / "chat_template.jinja").write_text(template)
    return model


TWICE = "grpo:\n  steps: 1\nsft:\n  steps: 1\ngrpo:\n  lr: 1.0\n"  # a recipe with two grpo sections
ROWS = {  # row of the README table -> (arguments, message)
    "malformed dataset row": (lambda t, b: ["data.source=jsonl",
                                            f"data.path={_data(t, [{'problem': '1+1', 'answer': '2'}, '{oops'])}"],
                              r"data\.jsonl:2: not valid JSON"),
    "missing answer field": (lambda t, b: ["data.source=jsonl", f"data.path={_data(t, [{'problem': '1+1'}])}"],
                             r"data\.jsonl:1: no field 'answer' \(data\.answer_field\)"),
    "empty dataset": (lambda t, b: ["data.source=jsonl", f"data.path={_data(t, [])}"], r"data\.jsonl: no rows"),
    "a field that is not text": (lambda t, b: ["data.source=jsonl",
                                               f"data.path={_data(t, [{'problem': '1+1', 'answer': None}])}"],
                                 r"data\.jsonl:1: 'answer' must be text or a number, got NoneType None"),
    "an answer that reads empty": (lambda t, b: ["data.source=jsonl", "data.answer_format=gsm8k",
                                                 f"data.path={_data(t, [{'problem': '1+1', 'answer': 'so ####'}])}"],
                                   r"data\.jsonl:1: 'answer' gives an empty answer \(data\.answer_format: gsm8k\)"),
    "a key written twice in a config file": (
        lambda t, b: [f"--config={_recipe(t, TWICE)}"],
        r"recipe\.yaml: line 5: key 'grpo' appears twice in one mapping"),
    "unknown config key": (lambda t, b: ["grpo.learning_rate=1e-6"], r"unknown key grpo\.learning_rate"),
    "wrong type": (lambda t, b: ["grpo.steps=many"], r"grpo\.steps must be int, got str 'many'"),
    "unknown reasoning-gym dataset": (lambda t, b: ["data.source=reasoning_gym", "data.name=spell_backwards"],
                                      r"data\.name: 'spell_backwards' is not a reasoning-gym dataset \(did you mean "
                                      r"spell_backward\?\)"),
    "unknown reasoning-gym option": (lambda t, b: ["data.source=reasoning_gym", "data.name=spell_backward",
                                                   "data.options={max_len: 3}"],
                                     r"data\.options: reasoning-gym spell_backward has no option 'max_len'"),
    "max tokens above the context": (lambda t, b: [f"model.path={b}", "rollout.max_new_tokens=600"],
                                     r"rollout\.max_new_tokens .*\(600\) plus the longest prompt .* exceed the "
                                     r"context .*\(512 tokens\)"),
    "template opens <think>, think_prefix off": (
        lambda t, b: [f"model.path={_think_model(t, b)}", "prompt.template=chat", "prompt.think_prefix=false",
                      "reward.format_weight=0.5"],
        r"prompt\.think_prefix is false but the tokenizer's chat template already opens <think>"),
    "missing model path": (lambda t, b: [f"model.path={t / 'no-such-model'}"],
                           r"no-such-model.*no such local directory"),
}


@pytest.mark.parametrize("row", list(ROWS))
def test_bad_input_is_refused_with_a_message_naming_it(tmp_path, base, capsys, row):
    make_args, message = ROWS[row]
    run_dir = tmp_path / "run"
    code = train.main([f"run.dir={run_dir}", "run.stages=[grpo]", "grpo.steps=1", "grpo.warmup_steps=0",
                       "rollout.engine=hf",
                       "data.answer_format=plain", *make_args(tmp_path, base)])
    assert code == 2
    err = capsys.readouterr().err
    assert re.search(message, err), err
    assert not (run_dir / "checkpoints").exists() and not (run_dir / "final").exists()


def test_batch_not_divisible_over_processes_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "3")
    assert train.main([f"run.dir={tmp_path}", "run.stages=[grpo]", "grpo.prompts_per_step=4",
                       "grpo.group_size=4"]) == 2
    assert "grpo.prompts_per_step x grpo.group_size (16) must be a multiple of the number of processes (3)" in \
        capsys.readouterr().err


def test_a_template_that_opens_think_is_not_opened_twice():
    tokenizer = build_tokenizer()
    tokenizer.chat_template += "{% if add_generation_prompt %}" + THINK_TEMPLATE_TAIL + "{% endif %}"
    prompt = render_prompt("1+1?", tokenizer, PromptConfig(template="chat", think_prefix=True))
    assert prompt.endswith("<think>\n") and prompt.count("<think>") == 1


def test_a_budget_beyond_the_context_is_refused_before_the_cold_start_trains(tmp_path, capsys):
    """The GRPO stage's token budget is checked before the first stage (SFT) runs, not when GRPO starts."""
    run_dir = tmp_path / "run"
    assert train.main([f"run.dir={run_dir}", "run.stages=[sft,grpo]", "rollout.max_new_tokens=100000"]) == 2
    assert re.search(r"rollout\.max_new_tokens .*\(100000\) plus the longest prompt", capsys.readouterr().err)
    assert not (run_dir / "metrics.jsonl").exists() and not (run_dir / "final").exists()


def test_an_engine_that_cannot_start_is_refused_before_anything_trains(tmp_path, capsys, monkeypatch):
    """rollout.engine=vllm where vllm does not import: exit 2 with the cause, before the cold start trains."""
    from grpo.rollout import vllm_engine

    monkeypatch.setattr(vllm_engine, "vllm", None)
    monkeypatch.setattr(vllm_engine, "IMPORT_ERROR", ImportError("No module named 'vllm'"))
    run_dir = tmp_path / "run"
    assert train.main([f"run.dir={run_dir}", "run.stages=[sft,grpo]", "rollout.engine=vllm"]) == 2
    err = capsys.readouterr().err
    assert "error: rollout.engine=vllm but vllm does not import" in err and "No module named 'vllm'" in err
    assert not (run_dir / "metrics.jsonl").exists()


def test_a_fresh_run_into_a_run_dir_that_holds_a_run_is_refused(tmp_path, capsys):
    """Without --resume, a run dir holding an earlier run's metrics and checkpoints is refused before anything is
    written (its lines would be appended to, its checkpoints mixed with the new run's): exit 2, the way out named,
    the earlier run's files as they were."""
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints" / "sft" / "step_50").mkdir(parents=True)
    (run_dir / "metrics.jsonl").write_text('{"stage": "sft", "step": 50}\n')
    (run_dir / "config.yaml").write_text("run:\n  seed: 7\n")
    assert train.main([f"run.dir={run_dir}"]) == 2
    err = capsys.readouterr().err
    assert f"{run_dir} already holds a run (metrics.jsonl, checkpoints)" in err
    assert f"--resume {run_dir}" in err and "run.overwrite=true" in err
    assert (run_dir / "metrics.jsonl").read_text() == '{"stage": "sft", "step": 50}\n'
    assert (run_dir / "config.yaml").read_text() == "run:\n  seed: 7\n"
    assert (run_dir / "checkpoints" / "sft" / "step_50").is_dir()


def test_overwrite_replaces_the_earlier_run_and_keeps_what_is_not_its(tmp_path, capsys):
    """run.overwrite=true through `python -m grpo.train`: the earlier run's files go (a .tmp a crash left too), the
    new run writes its own; logs/ (the console opened it first), wandb/ and a file of the user's stay; the saved
    config says overwrite false, so reusing it as a recipe never deletes silently."""
    from grpo.runs.files import RUN_FILES

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    for name in RUN_FILES:
        (run_dir / name).mkdir() if "." not in name else (run_dir / name).write_text("old\n")
    (run_dir / "final" / "model.safetensors").write_text("old")
    (run_dir / "summary.json.tmp").write_text("old")
    (run_dir / "wandb").mkdir()
    (run_dir / "notes.txt").write_text("mine")
    assert train.main([f"run.dir={run_dir}", "run.overwrite=true", "run.stages=[sft]", "task.train_size=64",
                       "task.heldout_size=4", "sft.steps=2", "sft.warmup_steps=0", "sft.batch_size=4",
                       "sft.eval_every=0", "sft.eval_size=4", "sft.max_new_tokens=4", "sft.log_every=1"]) == 0
    assert "run.overwrite: deleted the earlier run's summary.json, metrics.jsonl" in capsys.readouterr().out
    assert [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()
            if "loss/sft" in json.loads(line)] == [1, 2]
    assert (run_dir / "final" / "config.json").exists() and not (run_dir / "final" / "model.safetensors").read_text(
        errors="ignore").startswith("old")
    assert not (run_dir / "summary.json.tmp").exists() and not (run_dir / "generate").exists()
    assert (run_dir / "notes.txt").read_text() == "mine" and (run_dir / "wandb").is_dir()
    assert (run_dir / "logs").is_dir()
    assert "overwrite: false" in (run_dir / "config.yaml").read_text()


def test_overwrite_refuses_to_delete_the_model_it_would_train(tmp_path, capsys):
    run_dir = tmp_path / "run"
    (run_dir / "final").mkdir(parents=True)
    (run_dir / "final" / "config.json").write_text("{}")
    assert train.main([f"run.dir={run_dir}", "run.overwrite=true", "run.stages=[grpo]",
                       f"model.path={run_dir / 'final'}"]) == 2
    assert f"run.overwrite would delete model.path {run_dir / 'final'}" in capsys.readouterr().err
    assert (run_dir / "final" / "config.json").exists()
