"""String normalisation of a math answer before it is parsed (pure, no CAS).

What is removed is decoration that never changes the value: math delimiters, spacing commands, ``\\left`` /
``\\right``, the dollar sign, a degree sign, a percent sign, thousands separators, and unit *words* from an
explicit list that follow a number. Single letters are never taken for units: ``4t`` stays ``4t``.
What is rewritten is notation with one meaning: ``\\dfrac`` -> ``\\frac``, unicode symbols -> LaTeX,
``\\textbf{}``/``\\mathrm{}`` -> ``\\text{}``, "and" between answers -> a comma.
"""

from __future__ import annotations

import re

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
    "degrees?|radians?|percent|pct|points?|people|persons?|students?|items?|times"
)
_UNIT_TEXT = re.compile(
    r"\\text\{\s*(?:" + UNIT_WORDS + r")\s*\}(?:\^\{?[23]\}?)?\s*$", re.IGNORECASE
)
_UNIT_PLAIN = re.compile(r"(?<=[\d}])\s*(?:" + UNIT_WORDS + r")(?:\^\{?[23]\}?)?\s*$", re.IGNORECASE)

_UNICODE = {
    "π": "\\pi ", "√": "\\sqrt", "∞": "\\infty ", "−": "-", "–": "-", "×": "\\times ", "·": "\\cdot ",
    "≤": "\\le ", "≥": "\\ge ", "≠": "\\ne ", "∪": "\\cup ", "ℝ": "\\mathbb{R}", "°": "^\\circ", "⁄": "/",
    "½": "\\frac{1}{2}", "¼": "\\frac{1}{4}", "¾": "\\frac{3}{4}",
}
_TEXT_COMMANDS = re.compile(r"\\(?:textbf|textrm|textit|textsf|texttt|mathrm|mathbf|mathit|mathsf|mbox|hbox|operatorname)\s*\{")
_SPACING = re.compile(r"(?<!\\)\\(?:quad|qquad|[,;:! ])|~")
_DEGREE = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|\\circ|\\degree|\s*\\text\{\s*degrees?\s*\}|\s+degrees?\b", re.IGNORECASE)
_PERCENT = re.compile(r"\\%|%|\s*\\text\{\s*(?:percent|pct)\s*\}|\s+(?:percent|pct)\b", re.IGNORECASE)
_THOUSANDS = re.compile(r"(?<![\d.,])(\d{1,3})((?:,\d{3})+)(?![\d,])(?!\.\d*,)")


def _unicode(s: str) -> str:
    for k, v in _UNICODE.items():
        s = s.replace(k, v)
    return s


def strip_units(s: str) -> str:
    """Remove trailing unit words (``\\text{ cm}^2``, "square units", "dollars") after a number."""
    for _ in range(2):  # "5 \text{ cm}^2" and "3 feet 2" never nest deeper than this
        s = _UNIT_TEXT.sub("", s).rstrip()
        s = _UNIT_PLAIN.sub("", s).rstrip()
    return s


def normalize(answer: str) -> str:
    """Canonical LaTeX for one answer string. Pure: same input, same output."""
    s = _unicode(answer.strip())
    s = s.replace("\\$", "").replace("$", "")
    s = re.sub(r"\\(?:left|right|big|Big|bigg|Bigg)(?![a-zA-Z])\s*", "", s)
    s = re.sub(r"\\(?:displaystyle|textstyle)\b", "", s)
    s = re.sub(r"(\d),\\!\s*(?=\d{3}(?!\d))", r"\1", s)  # 10,\!080 (MATH's thousands separator)
    s = re.sub(r"(\d)\\,(?=\d{3}(?!\d))", r"\1", s)  # 12\,345
    s = re.sub(r"(\d)\{,\}(?=\d{3})", r"\1", s)  # 12{,}345
    s = _SPACING.sub(" ", s)
    s = re.sub(r"\\[dtc]frac", r"\\frac", s)
    s = re.sub(r"\\[dt]binom", r"\\binom", s)
    s = _TEXT_COMMANDS.sub(r"\\text{", s)
    s = _DEGREE.sub("", s)
    s = _PERCENT.sub("", s)
    s = re.sub(r"\.\s*$", "", s)  # a full stop after the answer
    s = strip_units(s)
    s = re.sub(r"\\text\{\s*(and|,)\s*\}|\s+and\s+", ",", s)
    s = _THOUSANDS.sub(lambda m: m.group(1) + m.group(2).replace(",", ""), s)
    return re.sub(r"\s+", " ", s).strip()
