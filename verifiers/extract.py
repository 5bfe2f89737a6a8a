"""Find the final answer in a completion (pure string work, no CAS).

The contract, in order (docs/math_policy.md, "Where the answer is read"):
1. only the text after the last ``</think>`` is judged; an opened but never closed ``<think>`` leaves nothing;
2. inside it, only the last ``<answer>...</answer>`` block, when there is one;
3. every brace-matched ``\\boxed{}`` / ``\\fbox{}`` (or ``\\boxed 5``) there; the caller decides what several
   boxes mean (hedging). "Final Answer: ..." after the last box (boxed steps, then the statement) wins over them;
4. else the last explicit phrase ("final answer is", "the answer is", "Answer:", "Answer $...$", GSM8K ``#### n``),
   or a math span stated as the answer ("$7$ is our answer"; closing the text: "$x \\geq 5$ is the solution.",
   "The solution is $x \\neq 5$"); after
   "Answer:" a sentence naming the quantity ("The largest $n$ is 34") gives what follows its last "is" / "are";
5. else the whole judged text when it is nothing but a short answer (or math with no prose word in it);
6. else its last line when that is one delimited math block with no prose word in it;
7. else nothing. The last number in the text is used only when the caller opts in.

An empty or unclosed last box means no answer: a truncated completion must not score.
Everything here is linear-time: no regex with nested quantifiers runs over the long completion.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_PHRASES = re.compile(
    r"(?:final\s+answer\s*(?:is|:)|the\s+answer\s+is|\banswer\s*:|\banswer(?=\s*(?:\$|\\\[|\\\())|"
    r"\*\*answer:?\*\*:?|\*\*final\s+answer:?\*\*:?|####)", re.IGNORECASE
)
# "Final Answer:" after the last box: boxed steps, then the stated answer (weaker phrases never override boxes)
_FINAL = re.compile(r"final\s+answer\s*(?:is|:)|\*\*final\s+answer", re.IGNORECASE)
# "$7$ is our answer", and as the closing sentence "$x \geq 5$ is the solution.": the math just before the phrase
_ANSWER_AFTER = re.compile(r"\$([^$]{1,200})\$\s+is\s+(?:the|our)\s+(?:final\s+)?(?:answer\b|solution\s*[.!]?\s*$)|"
                           r"\bthe\s+solution\s+is\s+\$([^$]{1,200})\$\s*[.!]?\s*$", re.IGNORECASE)
# where a completion's turn ends when the stop token was not honoured: nothing after it is the model's answer
_TURN_END = re.compile(r"<\|(?:im_start|im_end|endoftext|eot_id|end_of_text|start_header_id)\|>")
# words that end the answer and start a justification: "The answer is 18 because ..."
_JUSTIFICATION = re.compile(r"\s+(?:because|since|as|which|so|given|due to|for)\b.*$", re.IGNORECASE)
_LAST_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
# a closing sentence that names the quantity: "The volume of ABCDEFGH is 120" (one is / are, the answer after it)
_IS = re.compile(r"\s(?:is|are)\s+(?:equal\s+to\s+)?", re.IGNORECASE)
_HEDGE_BEFORE = re.compile(r"(?:\bor|\band|\beither|\bnot|\$\s*,)\s*$", re.IGNORECASE)  # "$3$ or $4$ is our answer"
# prose: a word of three letters or more that is not a LaTeX command
_WORD = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{3,}")
_MAX_BARE_CHARS = 80
_MAX_BARE_TOKENS = 4


@dataclass
class Extraction:
    """The answers found: several only when several boxes stand in the judged text."""

    answers: list[str] = field(default_factory=list)
    source: str = "none"  # boxed | phrase | bare | last_math | last_number | none


def answer_section(text: str) -> str:
    """The part of a completion that is judged: after the last </think>, inside the last <answer>, before a chat
    template's turn marker (`<|im_start|>` ...) that the generation ran past."""
    if (end := _TURN_END.search(text)) is not None:
        text = text[: end.start()]
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
    rest = text[last.end() :].lstrip(" :*\t\n")
    blocks = []  # display blocks right after the phrase (over several lines): their contents, several as a list
    while (block := _display_block(rest)) is not None:
        blocks.append(block[0])
        rest = block[1].lstrip(" \t\n")
    if blocks:
        rest = ", ".join(blocks) + ("\n" + rest if rest else "")
    lines = rest.split("\n")
    line = next((candidate.strip() for candidate in lines[:4] if candidate.strip()), "")
    line = " ".join(line.split())  # runs of whitespace collapsed first: the patterns below stay linear
    line = re.sub(r"\.?\s*I hope it is correct\.?$", "", line, flags=re.IGNORECASE)
    line = line.replace("\\$", "").replace("$", " ").replace("\\(", " ").replace("\\)", " ")
    line = line.replace("\\[", " ").replace("\\]", " ")
    line = re.sub(r"(?<!\d)\.(\s|$).*$|\.\s+[A-Z].*$", "", line)  # the sentence ends here
    line = _JUSTIFICATION.sub("", line).strip().rstrip(".").strip("* ")
    line = re.sub(r'^(?:\\?")+\s*|\s*(?:\\?")+$', "", line)  # the answer in quotes: "$12$ and $13$"
    if last.group(0).rstrip("*").endswith(":") and (named := _named(line)) is not None:
        line = named  # Minerva's "Final Answer: The largest $n$ is 34."
    return line or None


def _display_block(text: str) -> tuple[str, str] | None:
    """(content, what follows) of a `\\[...\\]` or `$$...$$` block at the start of `text`."""
    for left, right in (("\\[", "\\]"), ("$$", "$$")):
        if text.startswith(left) and (close := text.find(right, len(left))) != -1:
            return " ".join(text[len(left):close].split()), text[close + len(right):]
    return None


def _named(line: str) -> str | None:
    """What follows the one "is" / "are" of "The <quantity> is <answer>"; None when the sentence is not that
    (another "is" in it: "The smallest is 3 but the largest is 4" states two things)."""
    line = " ".join(line.split())
    if len(line) > 300 or not line.lower().startswith("the ") or "=" in line:
        return None
    parts = _IS.split(line)
    return parts[1].strip() if len(parts) == 2 and parts[1].strip() else None


def _after_every_box(section: str, phrase: re.Match) -> bool:
    """Whether the phrase starts after the last box has closed (a box after it, or around it, keeps the boxes)."""
    last_box = _last_match(_BOX, section)
    if last_box is None:
        return True
    close = _brace_pairs(section).get(section.find("{", last_box.end()), len(section))
    return phrase.start() > close and "\\boxed" not in section[phrase.end():]


def _last_match(pattern: re.Pattern, text: str):
    last = None
    for last in pattern.finditer(text):
        pass
    return last


def _looks_like_answer(text: str) -> bool:
    """A bare short answer: one or two words, a few tokens of math (a digit, a command, a relation), or math with
    no prose word in it (`\\frac{x^2}{16} + \\frac{y^2}{12} = \\frac14`)."""
    tokens = len(text.split())
    mathy = bool(re.search(r"[\d\\=<>^_]", text))
    return tokens <= 2 or (mathy and (tokens <= _MAX_BARE_TOKENS or not _WORD.search(_no_commands(text))))


def _no_commands(text: str) -> str:
    """The text without LaTeX commands and the joining words of a list ("19, 46, and 82")."""
    return re.sub(r"\\[A-Za-z]+|\b(?:and|or)\b", " ", text)


def _last_math_line(section: str) -> str | None:
    """The last line when it is nothing but one delimited math block ($...$, $$...$$, \\[...\\], \\(...\\)) with no
    prose in it: a closing display of the result."""
    lines = [line.strip() for line in section.strip().split("\n") if line.strip()]
    if not lines:
        return None
    last = lines[-1]
    if len(lines) >= 3 and lines[-1] in ("\\]", "$$") and lines[-3] in ("\\[", "$$"):  # \[ on its own line
        last = f"{lines[-3]}{lines[-2]}{lines[-1]}"
    inner = _strip_delimiters(last.rstrip("."))
    if inner == last.rstrip(".") or not inner or len(inner) > 2 * _MAX_BARE_CHARS or "$" in inner:
        return None
    return None if _WORD.search(_no_commands(inner)) else inner.rstrip(".,")


def extract(completion: str, *, last_number_fallback: bool = False) -> Extraction:
    """Find the final answer(s) in `completion` by the contract in the module docstring."""
    section = answer_section(completion)
    boxes = boxed_contents(section)
    if boxes and (final := _last_match(_FINAL, section)) is not None and _after_every_box(section, final):
        boxes = []  # boxed steps, then "Final Answer: The final answer is $10,455$": the statement at the end wins
    if boxes:
        if boxes[-1] is None:
            return Extraction()
        return Extraction([_strip_delimiters(b) for b in boxes if b is not None], "boxed")
    phrase = _phrase_answer(section)
    if phrase:
        return Extraction([phrase], "phrase")
    text = section.strip()
    if (stated := _last_match(_ANSWER_AFTER, text)) is not None and not _HEDGE_BEFORE.search(text[:stated.start()]):
        return Extraction([(stated.group(1) or stated.group(2)).strip()], "phrase")  # "$3$ or $4$ is ...": none
    bare = _strip_delimiters(section.strip())
    if bare and len(bare) <= _MAX_BARE_CHARS and "\n" not in bare and _looks_like_answer(bare):
        return Extraction([bare.rstrip(".")], "bare")
    if (line := _last_math_line(section)) is not None:
        return Extraction([line], "last_math")
    if last_number_fallback:
        numbers = _LAST_NUMBER.findall(section)
        if numbers:
            return Extraction([numbers[-1].rstrip(",")], "last_number")
    return Extraction()
