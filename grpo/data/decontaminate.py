"""N-gram decontamination of training problems against the evaluation suites (open-r1 uses 8-grams).

    index = SuiteIndex.from_suites(data_dir(), n=8)           # every suite's problem statements
    hit = index.match("... a training problem ...")           # None, or (suite, id, the shared n-gram)

Text is normalised to lowercase words and numbers, letters apart from digits, with equivalent LaTeX spellings made one
(punctuation, LaTeX braces, spacing such as 2x / 2 x, \\dfrac / \\frac, \\cdot / \\times, \\left( / ( and 2,400 /
2400 do not hide a copy).
A training text is contaminated by an eval statement when it contains at least `min_overlap` of that
statement's n-grams: one shared phrase ("express your answer as a common fraction") is boilerplate, not a copy
(a single shared 8-gram flags 1,602 of the 12,000 MATH train problems in shared data, mostly on such phrases;
half of a statement's 8-grams flags 102, near-copies of MATH-500 problems). A statement shorter than n
words is matched whole (its exact word sequence).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from grpo.data.suites import SUITES, load_rows

# the field holding each suite's problem statement (the prompt template around it is shared, never compared)
STATEMENT = {"math500": "problem", "aime24": "problem", "aime25": "problem", "gsm8k": "question",
             "humaneval": "prompt", "mbpp": "text", "livecodebench": "question_content"}


_SAME = [(re.compile(r"\\(?:left|right|bigg?|displaystyle)(?![a-z])"), " "),  # sizing: no content
         (re.compile(r"\\[dt]frac(?![a-z])"), r"\\frac"), (re.compile(r"\\cdot(?![a-z])"), r"\\times"),
         (re.compile(r"(?<=\d),(?=\d{3}(?!\d))"), "")]  # 2,400 is 2400


def words(text: str) -> list[str]:
    """Lowercase words and numbers, letters apart from digits (2x is 2 x), with LaTeX spellings of one thing made
    one (\\dfrac and \\frac, \\cdot and \\times, \\left( and (), thousands separators dropped."""
    text = text.lower()
    for pattern, replacement in _SAME:
        text = pattern.sub(replacement, text)
    return re.findall(r"[a-z]+|[0-9]+", text)


def ngrams(seq: list[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(seq[i : i + n]) for i in range(len(seq) - n + 1)}


@dataclass(frozen=True)
class Hit:
    suite: str
    id: str
    ngram: str  # the shared words


class SuiteIndex:
    def __init__(self, statements: list[tuple[str, str, str]], n: int = 8, min_overlap: float = 0.5):
        """statements: (suite, id, text)."""
        if n < 1 or not 0 < min_overlap <= 1:
            raise ValueError(f"need n >= 1 and 0 < min_overlap <= 1, got n={n}, min_overlap={min_overlap}")
        self.n, self.min_overlap = n, min_overlap
        self.owners: list[tuple[str, str]] = []  # statement number -> (suite, id)
        self.total: list[int] = []  # statement number -> its distinct n-grams
        self.grams: dict[tuple[str, ...], list[int]] = {}
        self.short: dict[tuple[str, ...], int] = {}  # statements of fewer than n words
        for suite, key, text in statements:
            seq = words(text)
            if not seq:
                continue
            number = len(self.owners)
            self.owners.append((suite, key))
            grams = ngrams(seq, n)
            self.total.append(len(grams))
            if len(seq) < n:
                self.short.setdefault(tuple(seq), number)
            for gram in grams:
                self.grams.setdefault(gram, []).append(number)
        self.short_lengths = sorted({len(k) for k in self.short})

    @classmethod
    def from_suites(cls, directory: Path, suites: list[str] | None = None, n: int = 8,
                    min_overlap: float = 0.5) -> "SuiteIndex":
        statements = []
        for name in suites or list(STATEMENT):
            suite = SUITES[name]
            for r in load_rows(suite, directory):
                statements.append((name, suite.id_of(r, r["_index"]), str(r[STATEMENT[name]])))
        return cls(statements, n, min_overlap)

    def match(self, text: str) -> Hit | None:
        """The eval statement this text copies most (by shared n-grams), or None."""
        seq = words(text)
        shared: dict[int, list[tuple[str, ...]]] = {}
        for gram in ngrams(seq, self.n):
            for number in self.grams.get(gram, ()):
                shared.setdefault(number, []).append(gram)
        best = max(shared, key=lambda k: len(shared[k]) / self.total[k], default=None)
        if best is not None and len(shared[best]) >= self.min_overlap * self.total[best]:
            suite, key = self.owners[best]
            return Hit(suite, key, " ".join(shared[best][0]))
        for length in self.short_lengths:
            for gram in ngrams(seq, length):
                if gram in self.short:
                    suite, key = self.owners[self.short[gram]]
                    return Hit(suite, key, " ".join(gram))
        return None
