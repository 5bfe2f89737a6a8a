"""One entry point to the verifiers: the gold answer says which one judges a completion.

    results = judge(completions, golds, timeout_s=5.0, workers=2)   # [VerifyResult], in order

A gold that is a string is a math answer (`verifiers.math`: extraction and equivalence); a gold that is a dict
is a code problem (`verifiers.code`: the completion's program runs on the problem's tests in the sandbox).
A batch may mix both; each kind goes to its own worker pool once.
"""

from __future__ import annotations


def judge(completions: list[str], golds: list, *, timeout_s: float, workers: int, partial: bool = False) -> list:
    """`partial`: a code completion's reward is the fraction of tests passed (`correct` still needs all)."""
    if len(completions) != len(golds):
        raise ValueError(f"judge got {len(completions)} completions but {len(golds)} golds")
    results: list = [None] * len(completions)
    code = [i for i, g in enumerate(golds) if isinstance(g, dict)]
    math = [i for i, g in enumerate(golds) if not isinstance(g, dict)]
    if math:
        from verifiers.math import verify_batch  # sympy and math-verify: only when a math answer is judged

        for i, r in zip(math, verify_batch([completions[i] for i in math], [golds[i] for i in math],
                                           timeout_s=timeout_s, workers=workers)):
            results[i] = r
    if code:
        from verifiers.code import verify_batch as verify_code  # the sandbox: only when a program is judged

        for i, r in zip(code, verify_code([completions[i] for i in code], [golds[i] for i in code],
                                          timeout_s=timeout_s, workers=workers, partial=partial)):
            results[i] = r
    return results
