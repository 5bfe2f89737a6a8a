"""Parse a normalised answer string into a typed value that `verifiers.equiv` can compare.

Kinds (one small frozen dataclass each):
    Num      a number or a numeric expression (no free symbols), with how it was written
    Expr     an expression with free symbols
    Seq      a bare list ``1, 2``, a set ``\\{1, 2\\}`` or a bracketed tuple/interval ``(1, 2]``
    Union    ``A \\cup B``
    Matrix   ``pmatrix`` / ``bmatrix`` / ``array`` rows
    Rel      an equation or inequality (chains keep every part)
    Based    a numeral with a base subscript, ``2516_8``
    Text     anything else, compared as a canonical string

Structure (commas, brackets, relations, unions) is split here; only leaves reach the LaTeX parser
(latex2sympy2_extended, the parser behind math-verify), and only after `verifiers.guard` let them through.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from fractions import Fraction

import sympy
from latex2sympy2_extended.latex2sympy2 import ConversionConfig, NormalizationConfig, latex2sympy

from verifiers.guard import refusal
from verifiers.normalize import normalize


class Refused(ValueError):
    """The answer would stall the CAS; see `verifiers.guard`."""


@dataclass(frozen=True)
class Num:
    value: sympy.Expr
    text: str
    int_literal: bool = False  # written as an integer ("8", "8.0", "+8")
    decimals: int | None = None  # places, when written as a terminating decimal literal
    unreduced: bool = False  # a fraction literal a/b with gcd(a, b) > 1


@dataclass(frozen=True)
class Expr:
    value: sympy.Expr
    text: str


@dataclass(frozen=True)
class Seq:
    items: tuple
    kind: str  # "list" (bare commas), "set" (\{ \}), "tuple" (brackets below)
    left: str = ""
    right: str = ""


@dataclass(frozen=True)
class Union:
    parts: tuple


@dataclass(frozen=True)
class Matrix:
    rows: tuple  # tuple of tuples of values


@dataclass(frozen=True)
class Rel:
    ops: tuple  # ("=",) or ("<", "<") for a chain
    parts: tuple  # len(ops) + 1 values
    lhs_text: str


@dataclass(frozen=True)
class Based:
    digits: str
    base: str


@dataclass(frozen=True)
class Text:
    text: str


Value = Num | Expr | Seq | Union | Matrix | Rel | Based | Text

_REL_OPS = [("\\leq", "<="), ("\\le", "<="), ("\\geq", ">="), ("\\ge", ">="), ("\\neq", "!="), ("\\ne", "!="),
            ("\\lt", "<"), ("\\gt", ">"), ("<=", "<="), (">=", ">="), ("!=", "!="), ("=", "="), ("<", "<"), (">", ">"),
            ("\\approx", "~")]
_OPENERS = {"(": ")", "[": "]", "\\{": "\\}", "\\langle": "\\rangle"}
_INT_RE = re.compile(r"[+-]?\d+(?:\.0+)?")
_DEC_RE = re.compile(r"[+-]?\d*\.(\d+)")
_FRAC_RE = re.compile(r"([+-]?)\\frac\{(\d+)\}\{(\d+)\}|([+-]?)(\d+)/(\d+)")
_MIXED_RE = re.compile(r"(-?)(\d+)\s*(?:\\frac\{(\d+)\}\{(\d+)\}|\s(\d+)/(\d+))")
_REPEAT_RE = re.compile(r"(-?)(\d*)\.(\d*)\\overline\{(\d+)\}")
_BASED_RE = re.compile(r"([0-9A-Za-z]+)_\{?(\d+)\}?")
_WORD_RE = re.compile(r"[A-Za-z][A-Za-z ']*[A-Za-z]")
_ASSIGN_LHS = re.compile(r"[A-Za-z](?:_\{?\w+\}?)?|\\[a-z]+|[A-Za-z]\([A-Za-z]\)|\\(?:text|vec|mathbf)\{[A-Za-z]\}")
_REALS = {"\\mathbb{R}", "\\mathbb R", "\\R", "\\text{all real numbers}", "\\text{R}"}
_PARSE_CONFIG = dict(
    convert_degrees=True,  # a degree sign left inside an expression (\sin 30^\circ) means pi/180
    normalization_config=NormalizationConfig(
        basic_latex=False, units=False, malformed_operators=True, nits=False, boxed="none", equations=False
    ),
    conversion_config=ConversionConfig(interpret_as_mixed_fractions=False, lowercase_symbols=False),
)


def split_top(s: str, sep: str) -> list[str]:
    """Split on `sep` where it stands outside every bracket (intervals like [1,2) count as brackets)."""
    parts, depth, start, i = [], 0, 0, 0
    while i < len(s):
        c = s[i]
        if c == "\\" and s.startswith(("\\{", "\\}"), i):
            depth += 1 if s[i + 1] == "{" else -1
            i += 2
            continue
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif depth == 0 and s.startswith(sep, i):
            parts.append(s[start:i])
            start = i + len(sep)
            i = start
            continue
        i += 1
    parts.append(s[start:])
    return [p.strip() for p in parts]


def _split_relation(s: str) -> tuple[list[str], list[str]]:
    """Top-level relation symbols in order, and the parts between them."""
    ops, parts, depth, start, i = [], [], 0, 0, 0
    while i < len(s):
        c = s[i]
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif depth == 0:
            for token, op in _REL_OPS:
                after = s[i + len(token) : i + len(token) + 1]
                if s.startswith(token, i) and not (token[0] == "\\" and after.isalpha()):
                    parts.append(s[start:i].strip())
                    ops.append(op)
                    i += len(token)
                    start = i
                    break
            else:
                i += 1
            continue
        i += 1
    parts.append(s[start:].strip())
    return ops, parts


def _wrapped(s: str) -> tuple[str, str, str] | None:
    """(left, inner, right) when the whole of `s` is one bracketed group."""
    for left in ("\\{", "\\langle", "(", "["):
        if s.startswith(left):
            rights = (_OPENERS[left],) if left in ("\\{", "\\langle") else (")", "]")
            for right in rights:
                if s.endswith(right) and len(s) > len(left) + len(right):
                    inner = s[len(left) : len(s) - len(right)]
                    if _balanced(inner):
                        return left, inner, right
    return None


def _balanced(s: str) -> bool:
    depth = 0
    for c in s.replace("\\{", "(").replace("\\}", ")"):
        depth += c in "([{"
        depth -= c in ")]}"
        if depth < 0:
            return False
    return depth == 0


def _to_rational(expr: sympy.Expr) -> sympy.Expr:
    """Floats that came from decimal literals become exact rationals (0.1 is 1/10, not 0.1000000000000000055)."""
    floats = expr.atoms(sympy.Float)
    return expr.xreplace({f: sympy.Rational(str(f)) for f in floats}) if floats else expr


def _leaf_number(s: str) -> Num | None:
    """Fast, exact paths for plain numerals: no CAS."""
    if m := _MIXED_RE.fullmatch(s.strip()):
        whole, num, den = int(m.group(2)), int(m.group(3) or m.group(5)), int(m.group(4) or m.group(6))
        if den and num < den:
            return Num((whole + sympy.Rational(num, den)) * (-1 if m.group(1) else 1), s.strip())
    if re.search(r"\d\s+[\d.]", s.strip()):
        return None  # "1 \quad 2" is two numbers, never 12
    t = s.replace(" ", "")
    if _INT_RE.fullmatch(t):
        return Num(sympy.Integer(int(Fraction(t))), t, int_literal=True)
    if m := _DEC_RE.fullmatch(t):
        return Num(sympy.Rational(Fraction(t)), t, decimals=len(m.group(1)))
    if m := _FRAC_RE.fullmatch(t):
        sign, a, b = (m.group(1), m.group(2), m.group(3)) if m.group(2) else (m.group(4), m.group(5), m.group(6))
        if int(b) == 0:
            return None
        value = sympy.Rational(int(a), int(b)) * (-1 if sign == "-" else 1)
        return Num(value, t, unreduced=sympy.gcd(int(a), int(b)) > 1)
    if m := _REPEAT_RE.fullmatch(t):
        sign, whole, fixed, rep = m.groups()
        head = Fraction(f"{whole or 0}.{fixed}" if fixed else (whole or "0"))
        tail = Fraction(int(rep), (10 ** len(rep) - 1) * 10 ** len(fixed))
        return Num(sympy.Rational(head + tail) * (-1 if sign else 1), t)
    return None


def canonical_text(s: str) -> str:
    """How text answers compare: no \\text wrappers, spaces or trailing dot, one outer pair of parentheses
    dropped ("(C)" is "C"), lower case. Nothing else is removed: "4.2" never becomes "42"."""
    s = re.sub(r"\\text\{([^{}]*)\}", r"\1", s)
    s = re.sub(r"\s+", "", s).rstrip(".").lower()
    if s.startswith("(") and s.endswith(")") and _balanced(s[1:-1]):
        s = s[1:-1]
    return s


def _leaf(s: str) -> Value:
    if (num := _leaf_number(s)) is not None:
        return num
    if m := _BASED_RE.fullmatch(s.replace(" ", "")):
        if not m.group(1).isalpha():
            return Based(m.group(1).upper(), m.group(2))
    if s.startswith("\\text{") and s.endswith("}") and s.count("\\text{") == 1 and _balanced(s[6:-1]):
        inner = s[6:-1].strip()
        value = _parse(inner) if inner else Text("")
        return value if not isinstance(value, Expr) else Text(canonical_text(inner))  # words are not products
    if _WORD_RE.fullmatch(s) and len(s.replace(" ", "")) >= 3:
        return Text(canonical_text(s))  # a word ("Evelyn", "odd"), not a product of symbols
    if (why := refusal(s)) is not None:
        raise Refused(why)
    if ":" in s:  # a time (12:00) or a ratio (7:32) is compared as written, never divided
        return Text("\u2260" + s if re.search(r"\d\s+\d", s) else canonical_text(s))  # 1 2:00 is not 12:00
    try:
        expr = latex2sympy(s, **_PARSE_CONFIG)
    except RecursionError:
        raise Refused("nested too deeply to parse") from None
    except Exception:
        return Text(canonical_text(s))
    if not isinstance(expr, sympy.Expr):
        return Text(canonical_text(s))
    try:
        expr = _to_rational(expr.subs({sympy.Symbol("i"): sympy.I, sympy.Symbol("e"): sympy.E}))
        if expr.has(sympy.zoo, sympy.nan):  # a division by zero is no number: 1/0 never equals 2/0
            return Text(canonical_text(s))
    except RecursionError:
        raise Refused("nested too deeply to evaluate") from None
    if expr.free_symbols:
        return Expr(expr, s)
    return Num(expr, s)


def _flat(values) -> tuple:
    """Items of a list or set, with nested bare lists (from \\pm or "or") spliced in."""
    out = []
    for v in values:
        out.extend(v.items if isinstance(v, Seq) and v.kind == "list" else (v,))
    return tuple(out)


def _approximates(approx: Value, exact: Value) -> bool:
    """Whether a decimal written after \\approx is the exact value rounded to the digits shown."""
    if not (isinstance(approx, Num) and isinstance(exact, Num)) or (approx.decimals is None and not approx.int_literal):
        return False
    places = approx.decimals or 0
    try:
        return bool(abs(sympy.N(exact.value - approx.value, 30)) <= sympy.Rational(1, 2) / 10**places)
    except (TypeError, ValueError):
        return False


def _plus_minus(a: str, b: str) -> list[Value]:
    """a + b and a - b. Of integers written out (`\\pm 1`, `3 \\pm 2`) the results count as written integers: the
    sign says which two numbers, nothing is left to evaluate."""
    plus, minus = _parse(f"{a}+({b})" if a else b), _parse(f"{a}-({b})" if a else f"-({b})")
    operands = [_parse(x) for x in (a, b) if x]
    if all(isinstance(v, Num) and v.int_literal for v in operands):
        return [Num(v.value, v.text, int_literal=True) if isinstance(v, Num) and v.value.is_integer else v
                for v in (plus, minus)]
    return [plus, minus]


def _semicolon_items(s: str) -> list[str]:
    """Top-level `;`-separated items (`-12;-11;-10`, groups `p=5,q=2;p=7,q=2`); [s] when there is none."""
    if ";" not in s:
        return [s]
    groups = split_top(s, ";")
    return groups if len(groups) > 1 and all(groups) else [s]


def _relation(ops: list[str], parts: list[str]) -> Value:
    values = [_parse(p) for p in parts]
    if "~" in ops:  # "x = 1/3 \approx 0.333": the approximation must be right, then it is commentary
        cut = ops.index("~")
        if any(op != "~" for op in ops[cut:]) or not all(_approximates(v, values[cut]) for v in values[cut + 1:]):
            return Text("\\approx: " + " ".join(parts))  # a wrong or mixed approximation: nothing to match
        ops, values = ops[:cut], values[: cut + 1]
        if not ops:
            return values[0]
    return Rel(tuple(ops), tuple(values), parts[0].replace(" ", ""))


def _matrix(s: str) -> Matrix | None:
    for left, right in (("[", "]"), ("(", ")")):  # \left[\begin{array}...\end{array}\right]
        if s.startswith(left) and s.endswith(right) and s[1:].lstrip().startswith("\\begin{"):
            s = s[1:-1].strip()
    m = re.fullmatch(r"\\begin\{(\w+)\}(?:\{[^}]*\})?(.*)\\end\{\1\}", s, re.S)
    if not m:
        return None
    rows = [r for r in re.split(r"\\\\(?:\[[^\]]*\])?", m.group(2)) if r.strip()]
    return Matrix(tuple(tuple(_parse(c) for c in r.split("&")) for r in rows))


def _scaled_matrix(s: str) -> Matrix | None:
    """`c \\begin{pmatrix}...\\end{pmatrix}` (a number times a matrix or vector): the matrix of the products, each
    entry as if written out (the factor was taken out, nothing is left unevaluated)."""
    start = s.find("\\begin{")
    factor = s[:start].strip().removesuffix("\\cdot").removesuffix("\\times").strip()
    if start <= 0 or not factor or (matrix := _matrix(s[start:])) is None:
        return None
    c = _parse(factor)
    written = isinstance(c, Num) and (c.int_literal or c.decimals is not None or
                                      (_FRAC_RE.fullmatch(factor.replace(" ", "")) is not None and not c.unreduced))
    if not written or c.value == 0:
        return None  # the factor must be a number written out: \binom{4}{2} or 3! in front are left unevaluated

    def times(v: Value) -> Value | None:
        if isinstance(v, Num):
            product = c.value * v.value
            literal = v.int_literal or v.decimals is not None or _FRAC_RE.fullmatch(v.text.replace(" ", "")) is not None
            return Num(product, f"{factor}*{v.text}", int_literal=bool(product.is_Integer and literal),
                       unreduced=v.unreduced)
        if isinstance(v, Expr):
            return Expr(c.value * v.value, f"{factor}*({v.text})")
        return None

    rows = tuple(tuple(times(v) for v in row) for row in matrix.rows)
    return None if any(v is None for row in rows for v in row) else Matrix(rows)


def _parse(s: str) -> Value:
    s = s.strip()
    if s in _REALS or s.replace(" ", "") in ("(-\\infty,\\infty)", "(-\\infty,+\\infty)"):
        return Seq((Num(-sympy.oo, "-\\infty"), Num(sympy.oo, "\\infty")), "tuple", "(", ")")
    if "\\begin{" in s[:8] and (matrix := _matrix(s)) is not None:
        return matrix
    if "\\begin{" in s and s.endswith("}") and (matrix := _scaled_matrix(s)) is not None:
        return matrix
    if len(parts := split_top(s, "\\cup")) > 1:
        return Union(tuple(_parse(p) for p in parts))
    if len(groups := _semicolon_items(s)) > 1:  # `;` between answers: a group with commas is one tuple
        return Seq(_flat(_parse(f"({g})" if len(split_top(g, ",")) > 1 else g) for g in groups), "list")
    if len(items := split_top(s, ",")) > 1:
        items = [i for i in items if i]
        return Seq(_flat(_parse(i) for i in items), "list") if items else Text("")
    ops, parts = _split_relation(s)
    if ops and all(parts):
        return _relation(ops, parts)
    if len(parts := split_top(s, "\\pm")) == 2 and parts[1]:  # a \pm b is the list a + b, a - b
        return Seq(_flat(_plus_minus(*parts)), "list")
    if (wrapped := _wrapped(s)) is not None:
        left, inner, right = wrapped
        items = split_top(inner, ",")
        if len(items) == 1 and len(semi := _semicolon_items(inner)) > 1:
            items = semi  # (0;-2;6): semicolons where there is no comma
        if left == "\\{":
            return Seq(_flat(_parse(i) for i in items), "set")
        if len(items) == 1 and left == "(" and right == ")":
            return _parse(inner)
        return Seq(tuple(_parse(i) for i in items), "tuple", left, right)
    if (m := re.fullmatch(r"([A-Za-z])\s*\\in\s*(.+)", s)) is not None:
        return _parse(m.group(2))
    return _leaf(s)


def is_assignment_lhs(text: str) -> bool:
    """`x`, `x_1`, `\\theta`, `f(x)`: a left side that names one variable, so `x = 3` means `3`."""
    return bool(_ASSIGN_LHS.fullmatch(text))


def tuple_lhs_names(text: str) -> list[str]:
    """The variables a left side like `(p,q)` or `(x,y,z)` names (distinct single variables, in brackets); [] for
    any other left side."""
    wrapped = _wrapped(text)
    if wrapped is None or wrapped[0] != "(":
        return []
    names = split_top(wrapped[1], ",")
    ok = len(names) > 1 and len(set(names)) == len(names) and all(_ASSIGN_LHS.fullmatch(n) for n in names)
    return names if ok else []


@functools.lru_cache(maxsize=4096)
def parse(answer: str) -> Value:
    """Normalise and parse one answer string. Raises `Refused` for inputs that would stall the CAS."""
    if (why := refusal(answer)) is not None:
        raise Refused(why)
    return _parse(normalize(answer))
