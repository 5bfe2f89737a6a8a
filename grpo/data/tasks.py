"""Built-in synthetic reasoning tasks: seeded, with held-out splits that never overlap training.

Multi-step integer arithmetic, evaluated left to right: "Compute ((47 + 38) - 15) * 3." The worked solution
takes one line per operation, then the boxed answer:

    <think>
    47 + 38 = 85
    85 - 15 = 70
    70 * 3 = 210
    </think>
    \\boxed{210}

Knobs: `digits` (largest operand), `ops` (steps), `operators`, and errors in the training worked solutions (the
cold-start data), as a weaker model or a crowd would write them: `solution_slips`, `sign_errors`,
`answer_sign_drops`. A problem belongs to the held-out split when a hash of its text says so, whatever seed or
split asked for it, so the two splits can never share a problem.
Records have the same fields as file datasets: {"problem", "answer", "solution"}.
"""

from __future__ import annotations

import hashlib
import random

from grpo.config.schema import TOOL_MARKERS  # the interpreter's default markers (rollout.tool_*)

HELDOUT_PERCENT = 10  # share of the problem space that belongs to the held-out split


def _is_heldout(problem: str) -> bool:
    return int(hashlib.sha256(problem.encode()).hexdigest()[:8], 16) % 100 < HELDOUT_PERCENT


def _problem(rng: random.Random, digits: int, ops: int, operators: str, errors: tuple[float, float, float]) -> dict:
    def operand() -> int:
        return rng.randint(1, 10 ** rng.randint(1, digits) - 1)

    first, moves = operand(), []
    expression = str(first)
    for _ in range(ops):
        op = rng.choice(operators)
        right = rng.randint(2, 9) if op == "*" else operand()  # small factors keep numbers printable
        moves.append((op, right))
        expression = f"({expression} {op} {right})" if len(moves) < ops else f"{expression} {op} {right}"
    problem = f"Compute {expression}."
    steps, answer = _derive(first, moves, Flaws())
    value = answer
    if any(errors):  # the writer's errors come from the problem's text, so the problems drawn never depend on them
        flaws = Flaws(random.Random(f"flaws:{problem}"), *errors, ops=ops)
        steps, value = _derive(first, moves, flaws)
        value = flaws.box(value)
    solution = "<think>\n" + "\n".join(steps) + "\n</think>\n\\boxed{" + str(value) + "}"
    return {"problem": problem, "answer": str(answer), "solution": solution}


class Flaws:
    """How an imperfect writer gets steps wrong: with probability `slips`, one solution has one step's result off by
    1 to 3 (a careless slip); each negative result loses its minus sign with probability `signs` (a systematic
    misconception). Either way the wrong value is carried on, as the writer would. `box` copies the last line into
    the boxed answer, dropping a negative one's minus sign with probability `sign_drops` (a transcription error)."""

    def __init__(self, rng: random.Random | None = None, slips: float = 0.0, signs: float = 0.0,
                 sign_drops: float = 0.0, *, ops: int = 0):
        self.rng, self.signs, self.sign_drops = rng, signs, sign_drops
        self.slip = (rng.randrange(ops), rng.choice((-3, -2, -1, 1, 2, 3))) if slips and rng.random() < slips else None

    def write(self, step: int, result: int) -> int:
        if self.slip and self.slip[0] == step:
            result += self.slip[1]
        if result < 0 and self.signs and self.rng.random() < self.signs:
            result = -result
        return result

    def box(self, value: int) -> int:
        """The boxed answer for a derivation ending at `value` (the lines stay as written; only the copy errs)."""
        if value < 0 and self.sign_drops and self.rng.random() < self.sign_drops:
            return -value
        return value


def _derive(value: int, moves: list[tuple[str, int]], flaws: Flaws) -> tuple[list[str], int]:
    """The worked solution's lines, left to right, as `flaws` writes them, and its final value."""
    steps = []
    for i, (op, right) in enumerate(moves):
        result = flaws.write(i, value + right if op == "+" else value - right if op == "-" else value * right)
        steps.append(f"{value} {op} {right} = {result}")
        value = result
    return steps, value


def _draw(n: int, split: str, rng_key: str, make, what: str) -> list[dict]:
    """`n` distinct records of `split` from `make(rng)`, drawn until enough fall in the split (by `_is_heldout`);
    a ValueError saying `what` exists when the problem space runs out."""
    if split not in ("train", "heldout"):
        raise ValueError(f"split must be train or heldout, got {split!r}")
    rng = random.Random(rng_key)
    records, seen, tries = [], set(), 0
    while len(records) < n:
        tries += 1
        if tries > 50 * n + 1000:
            raise ValueError(f"only {len(records)} distinct {split} {what}")
        record = make(rng)
        if record["problem"] in seen or _is_heldout(record["problem"]) != (split == "heldout"):
            continue
        seen.add(record["problem"])
        records.append(record)
    return records


def arithmetic(n: int, *, split: str, seed: int, digits: int = 2, ops: int = 2, operators: str = "+-",
               solution_slips: float = 0.0, sign_errors: float = 0.0, answer_sign_drops: float = 0.0) -> list[dict]:
    """`n` distinct problems of one split ("train" or "heldout"), deterministic in all arguments.

    Training worked solutions can be written with errors (see `Flaws`): `solution_slips` is the share of them with
    one careless slip, `sign_errors` the share of negative results written without their sign, `answer_sign_drops`
    the share of negative boxed answers copied without their sign from a right last line. Gold answers stay right,
    held-out solutions never err, and the problems drawn are the same whatever the errors."""
    errors = (solution_slips, sign_errors, answer_sign_drops) if split == "train" else (0.0, 0.0, 0.0)
    return _draw(n, split, f"{split}:{seed}:{digits}:{ops}:{operators}",
                 lambda rng: _problem(rng, digits, ops, operators, errors),
                 f"problems exist for digits={digits}, ops={ops}")


def _product(rng: random.Random, digits: int, tool_solutions: float) -> dict:
    """`a * b` with operands of `digits` digits. The worked solution computes the product with the interpreter (a
    block whose last expression the interpreter prints, its result, then the boxed copy) or, as someone without
    one would, writes it down in one line; which, decided by the problem's text, `tool_solutions` of the time."""
    low = 10 ** (digits - 1)
    a, b = rng.randint(low, 10 * low - 1), rng.randint(low, 10 * low - 1)
    problem, answer = f"Compute {a} * {b}.", a * b
    code, close, result, result_close = TOOL_MARKERS
    if random.Random(f"tool:{problem}").random() < tool_solutions:
        think = f"{code}{a} * {b}{close}{result}{answer}{result_close}"
    else:
        think = f"{a} * {b} = {answer}"
    return {"problem": problem, "answer": str(answer), "solution": f"<think>\n{think}\n</think>\n\\boxed{{{answer}}}"}


def products(n: int, *, split: str, seed: int, digits: int = 3, tool_solutions: float = 0.0) -> list[dict]:
    """`n` distinct multiplication problems of one split: "Compute 347 * 829." A product of several digits is what
    a small model cannot reliably work out in its head and can with an interpreter (configs/tiny_tools.yaml).
    Training worked solutions call the interpreter (rollout.tools' default markers) `tool_solutions` of the time;
    held-out solutions never matter (only their answers are read)."""
    share = tool_solutions if split == "train" else 1.0
    return _draw(n, split, f"products:{split}:{seed}:{digits}", lambda rng: _product(rng, digits, share),
                 f"products exist for digits={digits}")


def _program(rng: random.Random) -> dict:
    """A linear function shown at three consecutive inputs; tests add three inputs the prompt does not show.

    The worked solution restates the first two examples, then takes one small step per line (slope, slope times
    the first input, intercept), the granularity at which the tiny model learns the arithmetic task."""
    a, b, x0 = rng.randint(1, 9), rng.randint(0, 49), rng.randint(0, 9)
    f = lambda x: a * x + b  # noqa: E731
    shown = [x0, x0 + 1, x0 + 2]
    problem = "Write a Python function f(x) with " + ", ".join(f"f({x}) = {f(x)}" for x in shown) + "."
    solution = (f"<think>\nf({x0}) = {f(x0)}\nf({x0 + 1}) = {f(x0 + 1)}\n{f(x0 + 1)} - {f(x0)} = {a}\n"
                f"{a} * {x0} = {a * x0}\n{f(x0)} - {a * x0} = {b}\n"
                f"</think>\n```python\ndef f(x):\n    return {a} * x + {b}\n```")
    tests = [{"input": str(x), "output": str(f(x)), "testtype": "functional"} for x in shown + [x0 + 5, 11, 20]]
    return {"problem": problem, "answer": {"public_test_cases": tests, "metadata": {"func_name": "f"}},
            "solution": solution}


def programs(n: int, *, split: str, seed: int) -> list[dict]:
    """`n` distinct program-synthesis problems of one split: write `def f(x)` (a linear function of x) from three
    input/output examples. The answer is a LiveCodeBench-style problem (functional tests, `metadata.func_name`)
    that `verifiers.code` runs in the sandbox; the worked solution derives slope and intercept in its think
    block, then writes the function in a fenced block."""
    return _draw(n, split, f"programs:{split}:{seed}", _program, "program problems exist (9 x 50 x 10 in all)")
