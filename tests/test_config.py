"""Typed config: defaults, YAML, overrides, and errors that name the key and the file."""

from pathlib import Path

import pytest

from grpo.config import ConfigError, load_config, to_yaml

RECIPES = sorted((Path(__file__).resolve().parent.parent / "configs").glob("*.yaml"))


def write(tmp_path, text):
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("recipe", RECIPES, ids=[p.name for p in RECIPES])
def test_every_shipped_recipe_loads_and_validates(recipe):
    config = load_config(recipe)
    assert config.run.stages and config.sft.steps >= 1


def test_the_default_recipes_exist():
    names = {p.name for p in RECIPES}
    assert {"tiny.yaml", "tiny_sft.yaml"} <= names


def test_yaml_then_overrides(tmp_path):
    path = write(tmp_path, "sft:\n  steps: 40\n  lr: 1\nrun:\n  seed: 7\n")
    config = load_config(path, ["sft.steps=12", "sft.warmup_steps=2", "task.operators=+-*", "run.stages=[sft]"])
    assert (config.sft.steps, config.sft.lr, config.run.seed, config.task.operators) == (12, 1.0, 7, "+-*")
    assert isinstance(config.sft.lr, float)
    assert "steps: 12" in to_yaml(config)


@pytest.mark.parametrize("text,message", [
    ("sft:\n  stepz: 3\n", "recipe.yaml: unknown key sft.stepz"),
    ("sft:\n  steps: three\n", "recipe.yaml: sft.steps must be int, got str"),
    ("sft:\n  steps: 2.5\n", "recipe.yaml: sft.steps must be int, got float"),
    ("model:\n  gradient_checkpointing: 1\n", "model.gradient_checkpointing must be bool"),
    ("run:\n  stages: sft\n", "run.stages must be a list"),
    ("sft: 3\n", "sft must be a mapping"),
    ("bogus: 1\n", "unknown key bogus"),
    ("sft:\n  warmup_steps: 900\n  steps: 100\n", "sft.warmup_steps must be within 0..sft.steps"),
    ("data:\n  source: jsonl\n", "data.path is required when data.source is jsonl"),
    ("run:\n  stages: [rlhf]\n", "run.stages unknown stage"),
    ("run:\n  stages: [eval, sft]\n", "run.stages ['eval', 'sft'] are out of order"),
    ("model:\n  preset: huge\n", "model.preset 'huge' is not a preset"),
    ("sft:\n  max_length: 4096\n", "sft.max_length exceeds model.max_position_embeddings"),
    ("data:\n  source: csv\n", "data.source must be"),
    ("a: [1, 2\n", "not valid YAML"),
    ("grpo:\n  lr: 1.0e-5\nsft:\n  steps: 3\ngrpo:\n  steps: 10\n",
     "recipe.yaml: line 5: key 'grpo' appears twice in one mapping"),
    ("sft:\n  steps: 3\n  steps: 4\n", "line 3: key 'steps' appears twice"),
    ("model:\n  mixed_precision: fp16\n", "model.mixed_precision must be no or bf16"),
    ("model:\n  mixed_precision: bf16\n  dtype: bfloat16\n", "model.mixed_precision bf16 autocast keeps fp32"),
    ("task:\n  sign_errors: 1.5\n", "task.sign_errors is a share: 0 to 1"),
    ("task:\n  solution_slips: 0.2\ndata:\n  source: programs\n",
     "task.solution_slips, task.sign_errors, task.answer_sign_drops apply"),
])
def test_errors_name_the_key_and_the_file(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace(".", r"\.")):
        load_config(write(tmp_path, text))


def test_override_errors_name_the_command_line():
    with pytest.raises(ConfigError, match="command line: unknown key sft.nope"):
        load_config(None, ["sft.nope=1"])
    with pytest.raises(ConfigError, match="is not key.sub=value"):
        load_config(None, ["sft.steps"])


def test_text_overrides_keep_the_text_as_written():
    """A text key takes the text (YAML would read `exp #2` as `exp` and a comment, `2024-01-01` as a date, `on` as
    a bool); quoted, it is read as YAML; other keys are still read as YAML values."""
    config = load_config(None, ["run.dir=runs/exp #2", "run.name=2024-01-01", "run.project=on", "sft.lr=3e-4",
                                "run.stages=[sft]"])
    assert (config.run.dir, config.run.name, config.run.project) == ("runs/exp #2", "2024-01-01", "on")
    assert config.sft.lr == 3e-4 and config.run.stages == ["sft"]
    assert load_config(None, ["run.name='quoted'"]).run.name == "quoted"


def test_yaml_anchors_and_merge_keys_still_load(tmp_path):
    path = write(tmp_path, "sft: &s\n  steps: 70\n  lr: 0.5\ndistill:\n  sft:\n    <<: *s\n    steps: 90\n")
    config = load_config(path)
    assert (config.distill.sft.steps, config.distill.sft.lr, config.sft.steps) == (90, 0.5, 70)


def test_null_for_a_text_key_is_still_refused():
    with pytest.raises(ConfigError, match="run.dir must be str, got NoneType"):
        load_config(None, ["run.dir=null"])


def test_an_override_inside_a_mapping_changes_that_entry_only():
    config = load_config(None, ["data.options={a: 1, b: 2}", "data.options.b=3", "data.options.c.d=4"])
    assert config.data.options == {"a": 1, "b": 3, "c": {"d": 4}}
    with pytest.raises(ConfigError, match="data.options must be dict"):
        load_config(None, ["data.options=3"])


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "nope.yaml")


def test_the_suite_names_the_config_checks_are_the_suites():
    """grpo/config keeps the suite names itself (config imports nothing of data); they must be the suites'."""
    from grpo.config import SUITE_NAMES
    from grpo.data.suites import SUITES

    assert SUITE_NAMES == tuple(SUITES)
