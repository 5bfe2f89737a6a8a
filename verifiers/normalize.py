"""String normalisation of a math answer before it is parsed (pure, no CAS).

What is removed is decoration that never changes the value: math delimiters, spacing commands, ``\\left`` /
``\\right``, the dollar sign, a degree sign, a percent sign, thousands separators, and unit *words* from an
explicit list that follow a number. Single letters are never taken for units: ``4t`` stays ``4t``.
What is rewritten is notation with one meaning: ``\\dfrac`` -> ``\\frac``, unicode symbols -> LaTeX,
``\\textbf{}``/``\\mathrm{}`` -> ``\\text{}``, "and" between answers -> a comma, scientific notation
(``3.2 \\times 10^{4}``, ``6.02e23``) -> the decimal it is, Python's ``**`` and ``*`` -> ``^`` and ``\\cdot``,
"infinity" -> ``\\infty``, a zero imaginary part (``5 + 0i``) dropped.
"""

from __future__ import annotations

import re
from decimal import Decimal, localcontext

# Unit words stripped after a number. Never a single letter (t, m, s, g ... are variables far more often).
UNIT_WORDS = (
    "units?|square units?|sq units?|cubic units?|unit squared|units squared|"
    "inch(?:es)?|feet|foot|ft|yards?|yd|miles?|mph|kilometers?|kilometres?|km|centimeters?|centimetres?|cm|"
    "millimeters?|millimetres?|mm|meters?|metres?|"
    "square (?:inch(?:es)?|feet|foot|yards?|miles?|meters?|metres?|centimeters?|cm|units?)|"
    "cubic (?:inch(?:es)?|feet|foot|yards?|meters?|metres?|centimeters?|cm|units?)|"
    "sq(?:uare)? ?(?:ft|in|cm|m)|"
    "seconds?|secs?|minutes?|mins?|hours?|hrs?|days?|weeks?|months?|years?|"
    "dollars?|cents?|euros?|pounds?|lbs?|ounces?|oz|grams?|kilograms?|kg|mg|liters?|litres?|ml|gallons?|"
    "degrees?|percent|pct|points?|people|persons?|students?|items?|times"
)
_UNIT_TEXT = re.compile(
    r"\\text\{\s*(?:" + UNIT_WORDS + r")\s*\}(?:\^\{?[23]\}?)?\s*$", re.IGNORECASE
)
# a trailing \text{ ...} annotation of whole words (3+ letters each, or nothing) after a number: "42 \text{ ways}"
_TEXT_WORDS = re.compile(r"(?<=[\d}])\s*\\text\{\s*(?!radian)(?:[A-Za-z]{3,}[\s-]*)*\}\s*$")
_UNIT_PLAIN = re.compile(r"(?<=[\d}])\s*(?:" + UNIT_WORDS + r")(?:\^\{?[23]\}?)?\s*$", re.IGNORECASE)

_UNICODE = {
    "π": "\\pi ", "√": "\\sqrt", "∞": "\\infty ", "−": "-", "–": "-", "×": "\\times ", "·": "\\cdot ",
    "≤": "\\le ", "≥": "\\ge ", "≠": "\\ne ", "∪": "\\cup ", "ℝ": "\\mathbb{R}", "°": "^\\circ", "⁄": "/",
    "½": "\\frac{1}{2}", "¼": "\\frac{1}{4}", "¾": "\\frac{3}{4}",
}
_TEXT_COMMANDS = re.compile(
    r"\\(?:textbf|textrm|textit|textsf|texttt|textnormal|mathrm|mathbf|mathit|mathsf|mathtt|mbox|hbox|operatorname|"
    r"boldsymbol|bm)\s*\{")
_FONT_SWITCHES = re.compile(r"\\(?:bf|rm|it|sf|tt|boldmath)(?![A-Za-z])\s*")
_SPACING = re.compile(r"(?<!\\)\\(?:quad|qquad|[,;:! ])|~")
# a degree or percent sign is decoration only right after a number (or a closing brace: \frac{270}{7}^\circ),
# before the end, a comma or a bracket; a degree sign on an expression with \pi is kept (it converts)
_AFTER_NUMBER = r"(?<=[\d.}])\s*"
_SIGN_END = r"(?=\s*(?:$|,|\)|\]|\\\}))"
_DEGREE = re.compile(_AFTER_NUMBER + r"(?:\^\s*\{?\s*\\circ\s*\}?|\\degree|\\text\{\s*degrees?\s*\}|degrees?\b)"
                     + _SIGN_END, re.IGNORECASE)
_PERCENT = re.compile(_AFTER_NUMBER + r"(?:\\%|%|\\text\{\s*(?:percent(?:age)?|pct)\s*\}|(?:percent(?:age)?|pct)\b)"
                      + _SIGN_END,
                      re.IGNORECASE)
_NEVER = re.compile(r"(?!)")
# a whole answer that is one number with comma thousands separators (inside brackets a comma separates items)
_THOUSANDS = re.compile(r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?")
# ... or with spaces (a plain, thin or non-breaking one, the same throughout): "1 000 000", never "1 \quad 2"
_SPACED_THOUSANDS = re.compile(r"[+-]?\d{1,3}(?P<sep> |\\ |~|\\,|\\;|\u00a0|\u202f)\d{3}(?:(?P=sep)\d{3})*(?:\.\d+)?")
# scientific notation, 3.2 \times 10^{4} or 6.02e23, written out as the decimal it is (exponents up to 100)
_SCIENTIFIC = re.compile(r"(?<![\w.])([+-]?\d+(?:\.\d+)?)\s*(?:\\times|\\cdot|\*)\s*10\s*\^\s*"
                         r"(?:\{\s*([+-]?\d{1,3})\s*\}|([+-]?\d))"
                         r"(?![\w.])|(?<![\w.])(\d+(?:\.\d+)?)[eE]([+-]?\d{1,3})(?![\w.])")
_INFINITY_WORD = re.compile(r"(?<![\\A-Za-z])infinity(?![A-Za-z])", re.IGNORECASE)
_INFINITY = re.compile(r"([+-]?)\s*(?:\\text\{\s*)?(?:infinity|inf)\s*\}?", re.IGNORECASE)
# a real number written as a complex one with no imaginary part: "5 + 0i"
_ZERO_IMAGINARY = re.compile(r"([+-]?\d+(?:\.\d+)?)\s*[+-]\s*0\s*(?:\\cdot\s*)?i")


def _scientific(m: re.Match) -> str:
    mantissa, exponent = (m.group(1), m.group(2) or m.group(3)) if m.group(1) else (m.group(4), m.group(5))
    if abs(int(exponent)) > 100:
        return m.group(0)
    with localcontext() as exact:  # every digit kept: 7.99999999999999999999999999999e0 is not 8
        exact.prec = len(mantissa) + 110
        value = Decimal(mantissa).scaleb(int(exponent))
        text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


_OPERAND = r"(?:\([^()]*\)|[A-Za-z0-9.]+)"
_POWERS = re.compile(r"(?:\*\*\s*" + _OPERAND + r"\s*)+")


def _power(m: re.Match) -> str:
    """`**a**b` -> `^{a^{b}}`: Python's power is right-associative (x**3**2 is x^9)."""
    operands = re.findall(r"\*\*\s*(" + _OPERAND + ")", m.group(0))
    return "".join("^{" + o for o in operands) + "}" * len(operands) + (" " if m.group(0).endswith(" ") else "")


def python_operators(s: str) -> str:
    """Python-style powers and products as LaTeX: x**3 - 3*x -> x^{3} - 3 \\cdot x."""
    if "*" not in s:
        return s
    s = _POWERS.sub(_power, s)
    return re.sub(r"(?<=[\w)}])\s*\*\s*(?=[\w(\\])", r" \\cdot ", s)


def _unicode(s: str) -> str:
    for k, v in _UNICODE.items():
        s = s.replace(k, v)
    return s


def strip_units(s: str) -> str:
    """Remove trailing unit words (``\\text{ cm}^2``, "square units", "dollars") after a number."""
    for _ in range(2):  # "5 \text{ cm}^2" and "3 feet 2" never nest deeper than this
        s = _UNIT_TEXT.sub("", s).rstrip()
        s = _TEXT_WORDS.sub("", s).rstrip()
        s = _UNIT_PLAIN.sub("", s).rstrip()
    return s


def _unwrap(s: str, command: str) -> str:
    """`\\boxed{X}` (the whole answer) -> X, repeatedly; also a bare `{X}` around everything."""
    while True:
        t = s.strip()
        inner = t[len(command):] if command and t.startswith(command) else (t if not command else None)
        if inner is None or not (inner.startswith("{") and inner.endswith("}")):
            return s
        depth = 0
        for i, c in enumerate(inner):
            depth += (c == "{") - (c == "}")
            if depth == 0 and i < len(inner) - 1:
                return s  # the first brace closes before the end: not one group
        s = inner[1:-1]


def normalize(answer: str) -> str:
    """Canonical LaTeX for one answer string. Pure: same input, same output."""
    s = _unicode(answer.strip())
    s = _unwrap(_unwrap(s, "\\boxed"), "")
    s = s.replace("\\text{\\$}", "").replace("\\$", "").replace("$", "")
    s = re.sub(r"\\(?:left|right|big|Big|bigg|Bigg)(?![a-zA-Z])\s*", "", s)
    s = re.sub(r"\\(?:displaystyle|textstyle)\b", "", s)
    s = re.sub(r"(\d),\\!\s*(?=\d{3}(?!\d))", r"\1", s)  # 10,\!080 (MATH's thousands separator)
    s = re.sub(r"(\d)\\,(?=\d{3}(?!\d))", r"\1", s)  # 12\,345
    s = re.sub(r"(\d)\s*\{\s*,\s*\}\s*(?=\d{3})", r"\1", s)  # 12{,}345
    if _SPACED_THOUSANDS.fullmatch(s.strip()):
        s = re.sub(r"\\[ ,;]|[ ~\u00a0\u202f]", "", s)
    s = _SPACING.sub(" ", s)
    s = re.sub(r"\\[dtc]frac", r"\\frac", s)
    s = re.sub(r"\\[dt]binom", r"\\binom", s)
    s = _TEXT_COMMANDS.sub(r"\\text{", s)
    s = _unwrap(_FONT_SWITCHES.sub("", s), "")
    s = re.sub(r"\.\s*$", "", s)  # a full stop after the answer
    s = strip_units(s)
    degrees = _DEGREE if "\\pi" not in s else _NEVER
    signs = len(degrees.findall(s)) + len(_PERCENT.findall(s))
    s = _PERCENT.sub("", degrees.sub("", s))
    s = re.sub(r"\\text\{\s*(and|,)\s*\}|\s+and\s+", ",", s).strip()
    if signs <= 1 and _THOUSANDS.fullmatch(s):  # "12,345%" is one number; "60°,120°" is two
        s = s.replace(",", "")
    s = _SCIENTIFIC.sub(_scientific, python_operators(s))
    if m := _INFINITY.fullmatch(s):
        s = m.group(1) + "\\infty"
    s = _INFINITY_WORD.sub(r"\\infty ", s)  # inside an interval: (-infinity, 3)
    if m := _ZERO_IMAGINARY.fullmatch(s):
        s = m.group(1)
    return re.sub(r"\s+", " ", s).strip()
