"""A cheap pre-filter that refuses answers which would stall a computer algebra system.

The LaTeX parser evaluates as it parses (``9^{9^{9}}`` is computed, ``(10^8)!`` is computed), and the big
integer work behind that runs in C where no timeout can interrupt it. So before any answer reaches sympy
we look at the string: the length, the nesting depth, the size of integer literals, numeric exponent towers,
powers and factorials whose result would have more than `MAX_DIGITS` digits. A refused answer is judged
wrong with reason ``refused``; the worker's hard deadline remains the backstop for what slips through.
"""

from __future__ import annotations

import math
import re

MAX_CHARS = 2000
MAX_DEPTH = 40
MAX_DIGITS = 1000
MAX_SYMBOLIC_EXPONENT = 200  # x^{99999999} or (x+1)^{900}(x-1)^{900} would be expanded term by term
MAX_FACTORIAL = 5000  # 5000! has 16,326 digits: milliseconds for sympy

_INT = re.compile(r"\d+")
_POWER = re.compile(r"(\d+(?:\.\d+)?|\}|\)|(?<![A-Za-z\\])e)\s*\^\s*(\{|\d+)")
_FACTORIAL = re.compile(r"(\d+|\)|\})\s*!")
_BINOM = re.compile(r"\\[dt]?binom\s*\{")


def _group(s: str, open_at: int) -> str:
    """Contents of the brace group opening at `open_at` (to the end if unclosed)."""
    depth = 0
    for i in range(open_at, len(s)):
        if s[i] == "{":
            depth += 1
        elif s[i] == "}":
            depth -= 1
            if depth == 0:
                return s[open_at + 1 : i]
    return s[open_at + 1 :]


def _depth(s: str) -> int:
    depth = deepest = 0
    for c in s:
        if c in "({[":
            depth += 1
            deepest = max(deepest, depth)
        elif c in ")}]":
            depth -= 1
    return deepest


def _opening(s: str, close_at: int) -> int:
    """Index of the bracket that the one at `close_at` closes (0 if unbalanced)."""
    depth = 0
    for i in range(close_at, -1, -1):
        if s[i] in ")}]":
            depth += 1
        elif s[i] in "({[":
            depth -= 1
            if depth == 0:
                return i
    return 0


def _is_symbolic(expr: str) -> bool:
    """Whether `expr` holds a variable: then the CAS keeps it symbolic and nothing huge is computed.
    LaTeX commands (\\frac, \\pi, \\cdot) and Euler's e are not variables: e^{e^{e^{10}}} is a number."""
    return bool(re.search(r"[A-DF-Za-df-z]", re.sub(r"\\[A-Za-z]+", "", expr)))


_ANY_POWER = re.compile(r"([A-Za-z\\]+|\}|\))\s*\^\s*(\{|\d+)")


def _symbolic_base_exponents(answer: str) -> list[int]:
    """Integer exponents on a symbolic base (a letter, \\pi, a bracket): x^{2022} -> 2022. A numeric
    tower in the exponent counts as unbounded."""
    found = []
    for m in _ANY_POWER.finditer(answer):
        expo = _group(answer, m.start(2)) if m.group(2) == "{" else m.group(2)
        if _is_symbolic(expo):
            continue
        if "^" in expo or "!" in expo:
            found.append(10**9)
            continue
        ints = _INT.findall(expo)
        found.append(10**9 if any(len(d) > 11 for d in ints) else max(map(int, ints), default=0))
    return found


def _power_digits(base: str, expo: str) -> float:
    """Upper estimate of the digits of base^expo for numeric literals (inf for towers)."""
    if "^" in expo or "!" in expo:
        return math.inf
    ints = [int(d) for d in _INT.findall(expo)] or [1]
    if max(ints) > 10**6:
        return math.inf
    exponent = math.prod(i for i in ints if i > 0)  # generous: products overestimate sums
    base_log = math.log10(max(float(base), 2.0)) if base[0].isdigit() else 1.0
    return exponent * base_log


def refusal(answer: str) -> str | None:
    """Why `answer` is refused before parsing, or None when it is safe to hand to the CAS."""
    if len(answer) > MAX_CHARS:
        return f"answer longer than {MAX_CHARS} characters"
    if _depth(answer) > MAX_DEPTH:
        return f"nesting deeper than {MAX_DEPTH}"
    if any(len(d) > MAX_DIGITS for d in _INT.findall(answer)):
        return f"integer literal over {MAX_DIGITS} digits"
    exponents = _symbolic_base_exponents(answer)
    if any(e > MAX_SYMBOLIC_EXPONENT for e in exponents) or sum(exponents) > 2 * MAX_SYMBOLIC_EXPONENT:
        return "a polynomial of too high a degree to expand"
    for m in _POWER.finditer(answer):
        expo = _group(answer, m.start(2)) if m.group(2) == "{" else m.group(2)
        if m.group(1) in ("0", "1") or _is_symbolic(expo):
            continue
        if _power_digits(m.group(1), expo) > MAX_DIGITS * 10:
            return "power too large to evaluate"
    for m in _FACTORIAL.finditer(answer):
        arg = m.group(1)
        if not arg.isdigit():
            arg = answer[_opening(answer, m.start(1)) : m.start(1) + 1]
            if _is_symbolic(arg):
                continue
            if "^" in arg or "!" in arg:
                return "factorial too large to evaluate"
        if any(int(d) > MAX_FACTORIAL for d in _INT.findall(arg)):
            return "factorial too large to evaluate"
    for m in _BINOM.finditer(answer):
        top = _group(answer, m.end() - 1)
        if not _is_symbolic(top) and ("^" in top or any(len(d) > 6 for d in _INT.findall(top))):
            return "binomial too large to evaluate"
    return None
