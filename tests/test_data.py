"""Datasets: field mapping for MATH-500, GSM8K and MATH train, file errors with file and line, templates."""

import json
from pathlib import Path

import pytest

from grpo.config import DataConfig, PromptConfig, TaskConfig
from grpo.data.jsonl import DataError
from grpo.data.prompts import R1_INSTRUCTION, render_prompt, to_examples
from grpo.data.records import load_records
from grpo.hub import NotFound
from grpo.model import build_tokenizer

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_data = pytest.mark.skipif(not (SHARED / "math500.jsonl").exists(), reason=f"no benchmark data at {SHARED}")
TASK = TaskConfig()


def jsonl(tmp_path, rows, name="data.jsonl"):
    path = tmp_path / name
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return str(path)


@needs_data
@pytest.mark.parametrize("name,prompt,answer,fmt,expected", [
    ("math500.jsonl", "problem", "answer", "plain", "\\left( 3, \\frac{\\pi}{2} \\right)"),
    ("gsm8k_test.jsonl", "question", "answer", "gsm8k", "18"),
    ("math_train.jsonl", "problem", "solution", "boxed", None),
])
def test_real_files_map_their_fields(name, prompt, answer, fmt, expected):
    cfg = DataConfig(source="jsonl", path=str(SHARED / name), prompt_field=prompt, answer_field=answer,
                     answer_format=fmt, max_rows=5)
    records, report = load_records(cfg, TASK, split="train", seed=0)
    assert len(records) == 5 and report["left_out"] == report["rows"] - 5
    assert expected is None or records[0]["answer"] == expected
    assert all(r["problem"] and r["answer"] for r in records)


def test_malformed_json_names_file_and_line(tmp_path):
    path = jsonl(tmp_path, [{"problem": "a", "answer": "1"}, "{not json"])
    with pytest.raises(DataError, match=r"data\.jsonl:2: not valid JSON"):
        load_records(DataConfig(source="jsonl", path=path), TASK, split="train", seed=0)


@pytest.mark.parametrize("row,cfg,message", [
    ({"problem": "a"}, {}, r":1: no field 'answer'"),
    ({"answer": "1"}, {}, r":1: no field 'problem'"),
    ({"problem": "a", "answer": "no hashes"}, {"answer_format": "gsm8k"}, r":1: 'answer' has no '####'"),
    ({"problem": "a", "answer": "no box"}, {"answer_format": "boxed"}, r":1: 'answer' has no \\boxed"),
    ({"problem": "a", "answer": "  "}, {}, r":1: 'answer' gives an empty answer"),
    ({"problem": "a", "answer": "so ####"}, {"answer_format": "gsm8k"}, r":1: 'answer' gives an empty answer"),
    ({"problem": None, "answer": "1"}, {}, r":1: 'problem' must be text or a number, got NoneType None"),
    ({"problem": "a", "answer": ["1"]}, {}, r":1: 'answer' must be text or a number, got list"),
    ({"problem": "a", "answer": "1", "solution": None}, {"solution_field": "solution"},
     r":1: 'solution' must be text or a number, got NoneType"),
    ({"problem": "a", "answer": "1"}, {"solution_field": "solution"}, r":1: no field 'solution'"),
])
def test_a_bad_row_names_file_line_and_field(tmp_path, row, cfg, message):
    path = jsonl(tmp_path, [row])
    with pytest.raises(DataError, match=message):
        load_records(DataConfig(source="jsonl", path=path, **cfg), TASK, split="train", seed=0)


def test_a_user_verifier_row_may_hold_any_answer(tmp_path):
    """A module:function verifier reads the row itself: its answer field need not be text."""
    path = jsonl(tmp_path, [{"problem": "a", "answer": [1, 2], "verifier": "plugin_examples:answer_matches"}])
    records, _ = load_records(DataConfig(source="jsonl", path=path, heldout_percent=0), TASK, split="train", seed=0)
    assert records[0]["row"]["answer"] == [1, 2]


def test_a_byte_order_mark_is_not_data(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps({"problem": "a", "answer": 7}).encode() + b"\n")
    records, _ = load_records(DataConfig(source="jsonl", path=str(path)), TASK, split="train", seed=0)
    assert [(r["problem"], r["answer"]) for r in records] == [("a", "7")]


def test_missing_file_is_named(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_records(DataConfig(source="jsonl", path=str(tmp_path / "x.jsonl")), TASK, split="train", seed=0)


def test_parquet_files_load_through_datasets(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"q": ["1 + 1?", "2 + 2?"], "a": ["#### 2", "#### 4"]}), path)
    cfg = DataConfig(source="parquet", path=str(path), prompt_field="q", answer_field="a", answer_format="gsm8k")
    records, report = load_records(cfg, TASK, split="train", seed=0)
    assert [r["answer"] for r in records] == ["2", "4"] and report["kept"] == 2


def test_hub_datasets_fail_clearly_offline():
    """No network here: the message names the key, the id and that the hub could not be reached nor the cache help
    (tests/test_hub.py checks the other cases through a real cache)."""
    with pytest.raises(NotFound, match=r"data\.path 'no-such-org/no-such-dataset-xyz': the Hugging Face hub .* could "
                                       r"not be reached and it is not in the cache"):
        load_records(DataConfig(source="hub", path="no-such-org/no-such-dataset-xyz"), TASK, split="train", seed=0)


def test_templates():
    tokenizer = build_tokenizer()
    problem = "Compute 1 + 1."
    assert render_prompt(problem, tokenizer, PromptConfig("plain", False)) == "Compute 1 + 1.\n"
    chat = render_prompt(problem, tokenizer, PromptConfig("chat", True))
    assert chat == "<|im_start|>user\nCompute 1 + 1.<|im_end|>\n<|im_start|>assistant\n<think>\n"
    assert R1_INSTRUCTION in render_prompt(problem, tokenizer, PromptConfig("r1", False))


def test_sft_targets_continue_the_prompt_and_end_the_turn():
    tokenizer = build_tokenizer()
    records = [{"problem": "Compute 1 + 1.", "answer": "2", "solution": "<think>\n1 + 1 = 2\n</think>\n\\boxed{2}"}]
    (example,) = to_examples(records, tokenizer, PromptConfig("chat", True))
    assert example.prompt.endswith("<think>\n")
    assert example.completion == "1 + 1 = 2\n</think>\n\\boxed{2}<|im_end|>"
