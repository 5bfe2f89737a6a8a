"""Rule-based verifiers: a completion in, a `VerifyResult` out.

`verifiers.math` judges a final math answer against a gold answer; `verifiers.code` runs a program against
tests in the sandbox; `verifiers.route.judge` sends each completion to the one its gold calls for. All return the
same small record, which training turns into rewards and evaluation into accuracy. Imports the sandbox only;
nothing of the trainer.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class VerifyResult:
    """The verdict on one completion.

    reward: what GRPO receives (1.0 correct, 0.0 otherwise, unless a partial reward was asked for).
    correct: the strict verdict evaluation counts.
    reason: a short code: "correct", "wrong", "no_answer", "multiple_answers", "refused", "timeout",
        "memory", "bad_gold", "error" (math); the code verifier adds its own.
    extracted: the final answer (math) or program (code) read from the completion; None when there was none.
    tests: per-test verdicts of the code verifier ("pass", a reason, or "not_run"); None for math.
    detail: why a user's verifier (module:function) failed, when it did (reason reward_error, reward_timeout, ...).
    """

    reward: float
    correct: bool
    reason: str
    extracted: str | None = None
    tests: tuple[str, ...] | None = None
    detail: str = ""  # a user's verifier that failed: what it raised or returned (for the run's log)


__all__ = ["VerifyResult"]
