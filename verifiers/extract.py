"""Find the final answer in a completion (pure string work, no CAS).

The contract, in order (docs/math_policy.md, "Where the answer is read"):
1. only the text after the last ``</think>`` is judged; an opened but never closed ``<think>`` leaves nothing;
2. inside it, only the last ``<answer>...</answer>`` block, when there is one;
3. every brace-matched ``\\boxed{}`` / ``\\fbox{}`` (or ``\\boxed 5``) there; the caller decides what several
   boxes mean (hedging);
4. else the last explicit phrase ("final answer is", "the answer is", "Answer:", GSM8K ``#### n``);
5. else the whole judged text when it is nothing but a short answer;
6. else nothing. The last number in the text is used only when the caller opts in.

An empty or unclosed last box means no answer: a truncated completion must not score.
Everything here is linear-time: no regex with nested quantifiers runs over the long completion.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_PHRASES = re.compile(
    r"(?:final\s+answer\s*(?:is|:)|the\s+answer\s+is|\banswer\s*:|\*\*answer:?\*\*:?|\*\*final\s+answer:?\*\*:?|"
    r"####)", re.IGNORECASE
)
# words that end the answer and start a justification: "The answer is 18 because ..."
_JUSTIFICATION = re.compile(r"\s+(?:because|since|as|which|so|given|due to|for)\b.*$", re.IGNORECASE)
_LAST_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
_MAX_BARE_CHARS = 80
_MAX_BARE_TOKENS = 4


@dataclass
class Extraction:
    """The answers found: several only when several boxes stand in the judged text."""

    answers: list[str] = field(default_factory=list)
    source: str = "none"  # boxed | phrase | bare | last_number | none


def answer_section(text: str) -> str:
    """The part of a completion that is judged: after the last </think>, inside the last <answer>."""
    if "</think>" in text:
        text = text.rsplit("</think>", 1)[1]
    elif "<think>" in text:
        return ""  # still thinking when it stopped: no final answer yet
    start = text.rfind("<answer>")
    if start != -1:
        body = text[start + len("<answer>") :]
        end = body.find("</answer>")
        text = body if end == -1 else body[:end]
    return text


def _brace_pairs(text: str) -> dict[int, int]:
    """Index of every "{" mapped to the index of its closing "}", in one pass. Escaped braces do not count."""
    pairs: dict[int, int] = {}
    stack: list[int] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == "{":
            stack.append(i)
        elif c == "}" and stack:
            pairs[stack.pop()] = i
        i += 1
    return pairs


_BOX = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")


def boxed_contents(text: str) -> list[str | None]:
    """Contents of every box in order; None for an empty or unclosed one."""
    found: list[str | None] = []
    pairs: dict[int, int] | None = None
    for m in _BOX.finditer(text):
        i = m.end()
        while i < len(text) and text[i] == " ":
            i += 1
        if i < len(text) and text[i] == "{":
            pairs = _brace_pairs(text) if pairs is None else pairs
            close = pairs.get(i)
            found.append((text[i + 1 : close].strip() or None) if close is not None else None)
        elif i > m.end():  # `\boxed 5`: one token after a space
            token = re.match(r"[^\s$]+", text[i:])
            found.append(token.group(0) if token else None)
        else:
            found.append(None)
    return found


def _strip_delimiters(answer: str) -> str:
    s = answer.strip()
    for left, right in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if s.startswith(left) and s.endswith(right) and len(s) >= len(left) + len(right):
            s = s[len(left) : len(s) - len(right)].strip()
    return s


def _phrase_answer(text: str) -> str | None:
    """The answer after the last answer phrase: the rest of its line (or the next non-empty line when the
    phrase ends its line), math delimiters dropped but every span kept, so "$3$ or $4$" stays a hedge."""
    last = None
    for last in _PHRASES.finditer(text):
        pass
    if last is None:
        return None
    lines = text[last.end() :].lstrip(" :*\t").split("\n")
    line = next((candidate.strip() for candidate in lines[:4] if candidate.strip()), "")
    line = re.sub(r"\.?\s*I hope it is correct\.?$", "", line, flags=re.IGNORECASE)
    line = line.replace("\\$", "").replace("$", " ").replace("\\(", " ").replace("\\)", " ")
    line = line.replace("\\[", " ").replace("\\]", " ")
    line = re.sub(r"(?<!\d)\.(\s|$).*$|\.\s+[A-Z].*$", "", line)  # the sentence ends here
    line = _JUSTIFICATION.sub("", line).strip().rstrip(".").strip("* ")
    return line or None


def _looks_like_answer(text: str) -> bool:
    """A bare short answer: one or two words, or a few tokens of math (a digit, a command, a relation)."""
    tokens = len(text.split())
    return tokens <= 2 or (tokens <= _MAX_BARE_TOKENS and bool(re.search(r"[\d\\=<>^_]", text)))


def extract(completion: str, *, last_number_fallback: bool = False) -> Extraction:
    """Find the final answer(s) in `completion` by the contract in the module docstring."""
    section = answer_section(completion)
    boxes = boxed_contents(section)
    if boxes:
        if boxes[-1] is None:
            return Extraction()
        return Extraction([_strip_delimiters(b) for b in boxes if b is not None], "boxed")
    phrase = _phrase_answer(section)
    if phrase:
        return Extraction([phrase], "phrase")
    bare = _strip_delimiters(section.strip())
    if bare and len(bare) <= _MAX_BARE_CHARS and "\n" not in bare and _looks_like_answer(bare):
        return Extraction([bare.rstrip(".")], "bare")
    if last_number_fallback:
        numbers = _LAST_NUMBER.findall(section)
        if numbers:
            return Extraction([numbers[-1].rstrip(",")], "last_number")
    return Extraction()
