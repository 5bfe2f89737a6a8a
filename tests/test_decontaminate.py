"""Decontamination finds planted copies of evaluation problems (reformatted, embedded, short) and leaves
unrelated problems alone."""

import json

import pytest

from grpo.data.decontaminate import STATEMENT, SuiteIndex, words
from grpo.data.suites import SUITES, data_dir, load_rows

DATA = data_dir()
needs_data = pytest.mark.skipif(not (DATA / "math500.jsonl").exists(), reason=f"no benchmark data at {DATA}")


def test_words_ignore_case_punctuation_and_latex_spacing():
    assert words("Find $\\frac{1}{2}$ of  X, please!") == ["find", "frac", "1", "2", "of", "x", "please"]
    # spellings of one thing are one: 2x and 2 x, \\dfrac and \\frac, \\cdot and \\times, \\left( and (, 2,400 and 2400
    assert words("$2x = \\dfrac{3}{4} \\cdot \\left( y \\right)$ for $2,400") == words("2 x = \\frac{3}{4} \\times (y) for $2400")
    assert words("\\leftarrow \\cdots") == ["leftarrow", "cdots"]  # longer commands are left alone


@needs_data
def test_reformatted_copies_of_math500_are_found():
    """MATH-500 statements rewritten as a copier might (spaces between digits and letters, other LaTeX spellings)
    are still found."""
    import re as regex

    index = SuiteIndex.from_suites(DATA, suites=["math500"])
    rows = load_rows(SUITES["math500"], DATA)
    spaced = [regex.sub(r"(\d)([a-zA-Z])", r"\1 \2", r["problem"]) for r in rows]
    respelled = [r["problem"].replace("\\dfrac", "\\frac").replace("\\cdot", "\\times").replace("\\left", "")
                 .replace("\\right", "") for r in rows]
    for variants in (spaced, respelled):
        missed = [r["unique_id"] for r, text in zip(rows, variants) if text != r["problem"] and index.match(text) is None]
        assert missed == []


def test_planted_copies_are_found_and_named():
    index = SuiteIndex([("math500", "test/algebra/1.json", "What is the sum of all real x such that x^2 = 49?"),
                        ("gsm8k", "7", "Tom has 3 apples."),  # shorter than n: matched whole
                        ("humaneval", "HumanEval/0", "def add(a, b): return the sum of the two integers a and b")],
                       n=8)
    hit = index.match("Warm-up. WHAT is the sum of all   real $x$ such that $x^2=49$? Show work.")
    assert (hit.suite, hit.id) == ("math500", "test/algebra/1.json") and len(hit.ngram.split()) == 8
    assert index.match("Q: tom HAS 3 apples. How many now?").id == "7"
    assert index.match("Write def add(a, b): return the sum of the two integers a and b, please").suite == "humaneval"
    assert index.match("What is the sum of 3 and 4?") is None  # 7 shared words at most, no 8-gram
    assert index.match("Tom has 4 apples.") is None
    boiler = SuiteIndex([("math500", "a", "Simplify the product of these three radicals and then express your answer "
                                          "as a common fraction in lowest terms")], n=8)
    assert boiler.match("What is 3/9 of 12/8? Express your answer as a common fraction in lowest terms.") is None


@needs_data
def test_every_suite_problem_planted_in_training_text_is_found():
    index = SuiteIndex.from_suites(DATA)
    for name in ("math500", "aime24", "aime25", "gsm8k", "humaneval", "mbpp", "livecodebench"):
        suite = SUITES[name]
        rows = load_rows(suite, DATA)
        for r in rows[:: max(1, len(rows) // 25)]:
            planted = "Practice problem.\n" + str(r[STATEMENT[name]]).upper() + "\nAnswer below."
            hit = index.match(planted)
            assert hit is not None, (name, suite.id_of(r, r["_index"]))


@needs_data
def test_the_built_in_arithmetic_task_is_clean():
    from grpo.data.tasks import arithmetic

    index = SuiteIndex.from_suites(DATA)
    flagged = [r["problem"] for r in arithmetic(2000, split="train", seed=0, digits=2, ops=2, operators="+-")
               if index.match(r["problem"])]
    assert flagged == []
    train = [json.loads(line) for line in (DATA / "math_train.jsonl").read_text().splitlines()[:300]]
    flagged = [index.match(r["problem"]) for r in train]
    assert 0 < sum(h is not None for h in flagged) < 15  # MATH train holds a few near-copies of MATH-500
    assert {h.suite for h in flagged if h} == {"math500"}
