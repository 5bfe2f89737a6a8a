"""Evaluation metrics: pure functions of per-sample verdicts, each checked by hand in tests/test_eval_metrics.py.

pass@k (unbiased, Chen et al. 2021): with n samples of which c are correct, the chance that k drawn without
replacement include a correct one, 1 - C(n-c, k) / C(n, k); pass@1 is then c / n, the mean over samples that
DeepSeek-R1 reports. maj@k: the majority answer among the first k samples (extracted answers as the caller
normalised them; samples without one do not vote; ties go to the answer seen first) is judged right when a sample
that gave it was judged right. A
suite's figure is the mean over problems; its standard error comes from a bootstrap over problems. Two models
on the same problems: the exact McNemar test on the problems only one of them solves.
"""

from __future__ import annotations

import math
import random
from collections import Counter


def pass_at_k(n: int, c: int, k: int) -> float:
    """1 - C(n-c, k) / C(n, k), as a product (no huge binomials)."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    miss = 1.0
    for i in range(n - c + 1, n + 1):  # C(n-c, k) / C(n, k) = prod_{i=n-c+1}^{n} (1 - k / i)
        miss *= 1.0 - k / i
    return 1.0 - miss


def maj_at_k(answers: list[str | None], correct: list[bool], k: int) -> float:
    """1.0 when the most common answer among the first k samples is a correct one, else 0.0. `answers` are the
    extracted answers as the caller normalised them (grpo.stages.evaluate.vote_key: one spelling of \\frac{1}{2}
    and \\dfrac{1}{2}); the winner is correct when a sample that gave it was judged correct (another sample with
    the same answer may have been judged wrong for giving several)."""
    if len(answers) != len(correct) or not 1 <= k <= len(answers):
        raise ValueError(f"maj@k needs k in 1..{len(answers)} and one verdict per answer")
    votes = Counter(a for a in answers[:k] if a is not None)
    if not votes:
        return 0.0
    top = max(votes.values())
    winner = next(a for a in answers[:k] if a is not None and votes[a] == top)  # first seen among the tied
    return 1.0 if any(ok for a, ok in zip(answers[:k], correct) if a == winner) else 0.0


def bootstrap_se(values: list[float], *, samples: int = 1000, seed: int = 0) -> float:
    """Standard error of the mean of `values` (one per problem), by resampling problems with replacement."""
    if len(values) < 2:
        return 0.0
    rng = random.Random(seed)
    n = len(values)
    means = [sum(rng.choices(values, k=n)) / n for _ in range(samples)]
    centre = sum(means) / samples
    return (sum((m - centre) ** 2 for m in means) / (samples - 1)) ** 0.5


def mcnemar_exact(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar p-value for two models judged on the same problems: `only_a` problems only model A
    solves, `only_b` only model B. Under "equally good" each discordant problem goes either way with chance 1/2,
    so p = min(1, 2 P(X <= min(only_a, only_b))) for X ~ Binomial(only_a + only_b, 1/2); 1 with no discordance."""
    n, k = only_a + only_b, min(only_a, only_b)
    if n == 0:
        return 1.0
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2**n)


def ks_for(n: int) -> list[int]:
    """The k reported for n samples: 1, then powers of two up to n, and n itself."""
    ks, k = [1], 2
    while k < n:
        ks.append(k)
        k *= 2
    return ks + ([n] if n > 1 else [])


def suite_metrics(problems: list[dict], *, seed: int = 0) -> dict:
    """`problems`: one dict per problem with "correct" (list of bools, one per sample) and "answers" (extracted
    answer per sample or None). Returns pass@k and maj@k for every reported k, each with its bootstrap
    standard error (`<name>_se`)."""
    if not problems:
        raise ValueError("no problems to score")
    n = len(problems[0]["correct"])
    if any(len(p["correct"]) != n for p in problems):
        raise ValueError("every problem needs the same number of samples")
    out: dict[str, float] = {}
    for k in ks_for(n):
        per_problem = [pass_at_k(n, sum(p["correct"]), k) for p in problems]
        out[f"pass@{k}"] = sum(per_problem) / len(per_problem)
        out[f"pass@{k}_se"] = bootstrap_se(per_problem, seed=seed)
        if k > 1:
            votes = [maj_at_k(p["answers"], p["correct"], k) for p in problems]
            out[f"maj@{k}"] = sum(votes) / len(votes)
            out[f"maj@{k}_se"] = bootstrap_se(votes, seed=seed)
    return out
