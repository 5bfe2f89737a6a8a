"""One entry point to the verifiers: each completion goes to the one its row calls for.

    results = judge(completions, golds, timeout_s=5.0, workers=2)   # [VerifyResult], in order

`kinds` (one per completion) names the verifier: "math" (`verifiers.math`: extraction and equivalence against the
gold answer), "code" (`verifiers.code`: the gold is a problem with tests, run in the sandbox), "module:function"
(a user's verifier, `verifiers.plugins`: fn(completion, row) -> reward in [0, 1], correct at 1, run in the plug-in
pool with the same deadline; `rows` are what it receives) or "reasoning_gym" (`verifiers.gym`: the row is a
reasoning-gym entry, scored by its generator's own `score_answer`, in the same pool). Without `kinds` the gold's
type decides: a dict is a code problem, anything else a math answer. A batch may mix kinds; each goes to its own
worker pool once.
"""

from __future__ import annotations

from verifiers import VerifyResult, gym, plugins


def judge(completions: list[str], golds: list, *, timeout_s: float, workers: int, partial: bool = False,
          kinds: list[str] | None = None, rows: list[dict] | None = None) -> list:
    """`partial`: a code completion's reward is the fraction of tests passed, a reasoning-gym one its generator's
    partial credit (`correct` still needs all / a full score)."""
    if len(completions) != len(golds):
        raise ValueError(f"judge got {len(completions)} completions but {len(golds)} golds")
    kinds = kinds or ["code" if isinstance(g, dict) else "math" for g in golds]
    results: list = [None] * len(completions)
    for kind in dict.fromkeys(kinds):
        index = [i for i, k in enumerate(kinds) if k == kind]
        texts, answers = [completions[i] for i in index], [golds[i] for i in index]
        if kind == "math":
            from verifiers.math import verify_batch  # sympy and math-verify: only when a math answer is judged

            verdicts = verify_batch(texts, [str(a) for a in answers], timeout_s=timeout_s, workers=workers)
        elif kind == "code":
            from verifiers.code import verify_batch as verify_code  # the sandbox: only when a program is judged

            verdicts = verify_code(texts, answers, timeout_s=timeout_s, workers=workers, partial=partial)
        elif kind == "reasoning_gym":
            verdicts = _gym(texts, [rows[i] if rows else {} for i in index], timeout_s, workers, partial)
        else:
            verdicts = _custom(kind, texts, [rows[i] if rows else {} for i in index], timeout_s, workers)
        for i, verdict in zip(index, verdicts):
            results[i] = verdict
    return results


def _gym(completions: list[str], rows: list[dict], timeout_s: float, workers: int, partial: bool) -> list:
    """reasoning-gym rows: the answer is read here; only an answer goes to its generator's scorer (in the pool). The
    reward is 1 for a right answer, else 0; `partial`: the scorer's own partial credit (e.g. spell_backward's 0.2 for
    a near miss)."""
    read = [gym.final_answer(c) for c in completions]
    asked = [i for i, (answer, _) in enumerate(read) if answer is not None]
    scored = dict(zip(asked, _custom(gym.SCORER, [read[i][0] for i in asked], [rows[i] for i in asked], timeout_s,
                                     workers)))
    return [VerifyResult(0.0, False, why) if i not in scored else
            VerifyResult(scored[i].reward if partial or scored[i].reward != scored[i].reward else
                         float(scored[i].correct), scored[i].correct, scored[i].reason, extracted=answer)
            for i, (answer, why) in enumerate(read)]


def _custom(target: str, completions: list[str], rows: list[dict], timeout_s: float, workers: int) -> list:
    """A user's verifier: its value is the reward, correct when it is 1; NaN an infrastructure failure."""
    out = []
    for v in plugins.run(target, completions, rows, timeout_s=timeout_s, workers=workers):
        if v.value != v.value:
            out.append(VerifyResult(reward=float("nan"), correct=False, reason="infra_error"))
        elif v.reason != "ok":
            out.append(VerifyResult(reward=0.0, correct=False, reason=v.reason, detail=v.detail))
        else:
            out.append(VerifyResult(reward=v.value, correct=v.value >= 1.0, reason="correct" if v.value >= 1.0
                                    else "wrong"))
    return out
