"""Is a predicted answer equivalent to the gold one? Typed comparison of parsed values.

`equal(gold, pred)` dispatches on the kinds from `verifiers.answer`. The gold decides the format, so the
relation is deliberately not symmetric (an integer gold demands an integer answer; a decimal pred is never
rounded towards an exact gold). Policy and examples: docs/math_policy.md.

Numbers are exact first: rationals compare with ``==``; other numeric constants compare at 60 significant
digits with a relative tolerance of 1e-40 (so 1/2^99 never equals 1/2^98, unlike ``evalf(chop=True)``).
Expressions with free symbols must have the same symbols and agree after ``expand`` or at seven fixed
random points evaluated at 40 digits. Deterministic: the points come from a fixed-seed generator.
"""

from __future__ import annotations

import random
from typing import Callable

import sympy

from verifiers.answer import (
    Based,
    Expr,
    Matrix,
    Num,
    Rel,
    Seq,
    Text,
    Union,
    Value,
    canonical_text,
    is_assignment_lhs,
    tuple_lhs_names,
)

_REL_TOL = sympy.Rational(1, 10**40)
_POINTS = 7
_FLIP = {"<": ">", "<=": ">=", ">": ">", ">=": ">=", "=": "=", "!=": "!="}


def _close(a: sympy.Expr, b: sympy.Expr, digits: int = 60) -> bool:
    """Numerically equal to ~40 significant digits (both finite numbers)."""
    try:
        da, db = sympy.N(a, digits), sympy.N(b, digits)
        diff = abs(sympy.N(da - db, digits))
        scale = max(abs(da), abs(db))
    except (TypeError, ValueError, ZeroDivisionError):
        return False
    if not (diff.is_number and scale.is_number) or diff.has(sympy.nan, sympy.zoo):
        return False
    if scale == 0:
        return True
    return bool(diff <= _REL_TOL * scale)


def _tiny_terms(d: sympy.Expr) -> bool:
    """Whether a difference holds a rational with a 30+ digit numerator or denominator: a planted perturbation
    (sqrt(2) + 10^-50) that a numeric check would miss."""
    return any(abs(r.p) > 10**30 or r.q > 10**30 for r in d.atoms(sympy.Rational))


def _exactly_zero(d: sympy.Expr) -> bool:
    """Decide d == 0 for a numeric constant: exactly for algebraic numbers (minimal polynomial), by
    simplification for others, and only then numerically at 120 digits."""
    if d.has(sympy.pi, sympy.E) or d.atoms(sympy.Function):
        if sympy.simplify(d) == 0:
            return True
        return _close(d, sympy.Integer(0), 120) or bool(abs(sympy.N(d, 120)) < sympy.Rational(1, 10**100))
    x = sympy.Dummy("x")
    try:
        return sympy.minimal_polynomial(d, x) == x
    except (NotImplementedError, ValueError, TypeError):
        return sympy.simplify(d) == 0


def same_number(a: sympy.Expr, b: sympy.Expr) -> bool:
    """Exact equality of two numeric values: rationals with ==, algebraic numbers by their minimal
    polynomial, transcendental ones by simplification (numerically at 120 digits only as a last resort)."""
    if a == b:
        return True
    if a.is_Rational and b.is_Rational:
        return False
    if any(x.has(sympy.oo, -sympy.oo, sympy.zoo, sympy.nan) for x in (a, b)):
        return False
    d = sympy.expand(a - b)
    if d == 0:
        return True
    if d.is_Rational or _tiny_terms(d) or not _close(a, b):
        return False
    return _exactly_zero(d)


def _round_matches(exact: sympy.Expr, gold: sympy.Rational, places: int) -> bool:
    """Whether `exact` rounds to the decimal `gold` at `places` decimals (half an ulp either way)."""
    try:
        return bool(abs(sympy.N(exact - gold, 60)) <= sympy.Rational(1, 2) / 10**places)
    except (TypeError, ValueError):
        return False


def _significant(text: str) -> int:
    digits = text.lstrip("+-").replace(".", "").lstrip("0")
    return len(digits)


def _num_equal(g: Num, p: Num) -> bool:
    if g.int_literal:  # an integer gold needs an integer answer (PRM800K)
        return p.int_literal and g.value == p.value
    if p.unreduced and p.text != g.text:
        return False
    if g.decimals is not None:
        if p.decimals is not None or p.int_literal:
            return g.value == p.value
        if g.value == p.value:
            return True
        # a gold with 3+ significant digits is taken as rounded: an exact answer may round to it
        return _significant(g.text) >= 3 and _round_matches(p.value, g.value, g.decimals)
    if p.decimals is not None:
        return g.value == p.value  # 0.5 is 1/2; 0.333 is not 1/3
    return same_number(g.value, p.value)


def _points(symbols: list[sympy.Symbol]) -> list[dict]:
    """Seven fixed points, some with negative coordinates, so |x| and x (or sqrt(x^2) and x) differ."""
    rng = random.Random(1234)
    return [{s: sympy.Rational(rng.randint(30, 270), 100) * (-1 if (k + j) % 3 == 2 else 1)
             for j, s in enumerate(symbols)} for k in range(_POINTS)]


def same_expr(a: sympy.Expr, b: sympy.Expr) -> bool:
    """Symbolic equality of two expressions with the same free symbols."""
    if {s.name.lower() for s in a.free_symbols} != {s.name.lower() for s in b.free_symbols}:
        return False
    if a == b:
        return True
    d = sympy.expand(a - b)
    if d == 0:
        return True
    if d.is_number or _tiny_terms(d):
        return False  # the two differ by a constant
    symbols = sorted(a.free_symbols | b.free_symbols, key=lambda s: s.name)
    checked = 0
    for point in _points(symbols):
        try:
            va, vb = a.subs(point), b.subs(point)
        except (TypeError, ValueError, ZeroDivisionError):
            continue
        if any(v.has(sympy.zoo, sympy.nan) or not v.is_number for v in (va, vb)):
            continue
        if not _close(va, vb, 40):
            return False
        checked += 1
    return checked >= 3


def _scalar_multiple(a: sympy.Expr, b: sympy.Expr, positive: bool) -> bool:
    """Whether b = c * a for a non-zero constant c (positive when an inequality's direction must hold)."""
    if a == 0 or b == 0:
        return a == b
    symbols = sorted(a.free_symbols | b.free_symbols, key=lambda s: s.name)
    ratios = []
    for point in _points(symbols):
        try:
            va, vb = sympy.N(a.subs(point), 40), sympy.N(b.subs(point), 40)
        except (TypeError, ValueError, ZeroDivisionError):
            continue
        if not (va.is_number and vb.is_number) or va == 0:
            continue
        ratios.append(vb / va)
    if len(ratios) < 3 or not all(_close(r, ratios[0], 40) for r in ratios):
        return False
    c = ratios[0]
    return bool(c != 0 and (not positive or c > 0))


def _as_expr(v: Value) -> sympy.Expr | None:
    return v.value if isinstance(v, (Num, Expr)) else None


def _rel_equal(g: Rel, p: Rel) -> bool:
    if g.ops == p.ops and all(equal(a, b) for a, b in zip(g.parts, p.parts)):
        return True  # the same relation, part by part (also with functions such as g(x) that cannot be sampled)
    if len(g.ops) == 1 and len(p.ops) == 1 and g.ops[0] == "=" == p.ops[0]:
        if g.lhs_text == p.lhs_text and is_assignment_lhs(g.lhs_text) and equal(g.parts[1], p.parts[1]):
            return True
    g_ops, g_parts = _canonical(g)
    p_ops, p_parts = _canonical(p)
    if g_ops != p_ops:
        return False
    exprs = [(_as_expr(a), _as_expr(b), _as_expr(c), _as_expr(d))
             for a, b, c, d in zip(g_parts, g_parts[1:], p_parts, p_parts[1:])]
    if any(x is None for row in exprs for x in row):
        return False
    positive = any(op != "=" and op != "!=" for op in g_ops)
    return all(_scalar_multiple(gl - gr, pl - pr, positive) for gl, gr, pl, pr in exprs)


def _canonical(r: Rel) -> tuple[tuple, tuple]:
    """Write every inequality with > / >= (a < b becomes b > a)."""
    if all(op in ("<", "<=") for op in r.ops):
        return tuple(_FLIP[op] for op in reversed(r.ops)), tuple(reversed(r.parts))
    return r.ops, r.parts


def _multiset_equal(gold: tuple, pred: tuple) -> bool:
    if len(gold) != len(pred):
        return False
    left = list(pred)
    for g in gold:
        for i, p in enumerate(left):
            if equal(g, p):
                del left[i]
                break
        else:
            return False
    return True


def _without_repeats(items: tuple) -> tuple:
    kept: list = []
    for v in items:
        if not any(equal(k, v) and equal(v, k) for k in kept):
            kept.append(v)
    return tuple(kept)


def _seq_equal(g: Seq, p: Seq) -> bool:
    if g.kind in ("list", "set"):
        if p.kind not in ("list", "set"):
            return False
        if _multiset_equal(g.items, p.items):
            return True
        # the same solution listed twice adds nothing (a gold that lists none twice is matched as a set)
        return len(_without_repeats(g.items)) == len(g.items) and _multiset_equal(g.items, _without_repeats(p.items))
    return (p.kind == "tuple" and (g.left, g.right) == (p.left, p.right) and len(g.items) == len(p.items)
            and all(equal(a, b) for a, b in zip(g.items, p.items)))


def _matrix_equal(g: Matrix, p: Matrix) -> bool:
    if [len(r) for r in g.rows] != [len(r) for r in p.rows]:
        return False
    return all(equal(a, b) for ra, rb in zip(g.rows, p.rows) for a, b in zip(ra, rb))


def _expr_equal(g: Expr, p: Value) -> bool:
    return isinstance(p, Expr) and same_expr(g.value, p.value)


_SAME_KIND: dict[type, Callable] = {
    Num: _num_equal,
    Expr: _expr_equal,
    Seq: _seq_equal,
    Union: lambda g, p: _multiset_equal(g.parts, p.parts),
    Matrix: _matrix_equal,
    Rel: _rel_equal,
    Based: lambda g, p: (g.digits, g.base) == (p.digits, p.base),
    Text: lambda g, p: g.text == p.text,
}


def _agree(values) -> bool:
    last = values[-1]
    return all(equal(last, r) or equal(r, last) for r in values[:-1])


def _unwrap_assignment(v: Value) -> Value | None:
    """What an equation states as the answer, or None when it is not such a statement:
    `x = 3` -> 3; a chain `x = 5 + 6 = 11` -> 11 only when every right side agrees (`x = 4 = 3` -> nothing);
    `(p, q) = (3, 2)` -> the tuple (3, 2); a numeric chain `5 + 5 + 1 = 11` -> 11 when every part agrees;
    `x = 4, y = -2` (assignments to distinct variables) -> the tuple (4, -2), single letters in alphabetical order
    (a point's coordinates: `y = -2, x = 4` is the same), other names in the order written."""
    if isinstance(v, Rel) and set(v.ops) == {"="}:
        rights = v.parts[1:]
        if is_assignment_lhs(v.lhs_text):
            return rights[-1] if _agree(rights) else Text("\u2260")  # an inconsistent chain answers nothing
        size = len(tuple_lhs_names(v.lhs_text))
        if size and all(isinstance(r, Seq) and r.kind == "tuple" and len(r.items) == size for r in rights):
            return rights[-1] if _agree(rights) else Text("\u2260")
        if all(isinstance(p, Num) for p in v.parts):  # arithmetic shown on the way to the answer
            return v.parts[-1] if _agree(v.parts) else Text("\u2260")
    if isinstance(v, Seq) and v.kind == "list" and len(v.items) > 1 and all(
            isinstance(i, Rel) and i.ops == ("=",) and is_assignment_lhs(i.lhs_text) for i in v.items):
        names = [i.lhs_text for i in v.items]
        if len(set(names)) == len(names):
            items = list(v.items)
            if all(len(n) == 1 and n.isalpha() for n in names):  # x, y, z: a point's coordinates in their order
                items.sort(key=lambda i: i.lhs_text)
            return Seq(tuple(i.parts[1] for i in items), "tuple", "(", ")")
    return None


def _assignments(v: Value) -> dict[str, Value] | None:
    """What an answer assigns, by variable: `x = 3` (a consistent chain: its last part), `x = 4, y = -2` (distinct
    variables), `(p, q) = (3, 2)`; None for anything else."""
    if isinstance(v, Rel) and set(v.ops) == {"="}:
        rights = v.parts[1:]
        if is_assignment_lhs(v.lhs_text):
            return {v.lhs_text: rights[-1]} if _agree(rights) else None
        names = tuple_lhs_names(v.lhs_text)
        if names and all(isinstance(r, Seq) and r.kind == "tuple" and len(r.items) == len(names) for r in rights):
            return dict(zip(names, rights[-1].items)) if _agree(rights) else None
        return None
    if isinstance(v, Seq) and v.kind == "list" and len(v.items) > 1:
        maps = [_assignments(i) for i in v.items]
        if all(m is not None and len(m) == 1 for m in maps):
            merged = {k: value for m in maps for k, value in m.items()}
            return merged if len(merged) == len(maps) else None
    return None


def equal(gold: Value, pred: Value) -> bool:
    """Whether `pred` answers `gold` (see the module docstring and docs/math_policy.md)."""
    gold_map, pred_map = _assignments(gold), _assignments(pred)
    if gold_map is not None and pred_map is not None:  # both name their variables: the same ones, the same values
        return gold_map.keys() == pred_map.keys() and all(equal(gold_map[k], pred_map[k]) for k in gold_map)
    if type(gold) is type(pred):
        if _SAME_KIND[type(gold)](gold, pred):
            return True
        if not (isinstance(gold, Seq) and (gold_map is not None or pred_map is not None)):
            return False  # only a list of assignments against a tuple goes on below
    if (inner := _unwrap_assignment(pred)) is not None:  # x = 3 answers 3
        return equal(gold, inner)
    if (inner := _unwrap_assignment(gold)) is not None:  # 3 answers x = 3
        return equal(inner, pred)
    if isinstance(gold, Text) or isinstance(pred, Text):  # "(C)" and \text{C}, "evelyn" and \text{Evelyn}
        return _text_of(gold) is not None and _text_of(gold) == _text_of(pred)
    return False


def _text_of(v: Value) -> str | None:
    """Text, or a lone symbol (a choice letter "C"); numbers and other expressions never compare as text."""
    if isinstance(v, Text):
        return v.text
    if isinstance(v, Expr) and isinstance(v.value, sympy.Symbol):
        return canonical_text(v.text)
    return None
