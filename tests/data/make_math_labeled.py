#!/usr/bin/env python3
"""Build the labeled evaluation set for the math answer verifier.

Writes ``tests/data/math_labeled.jsonl`` (next to this script).  Every line is

    {"id", "category", "gold", "completion", "expected", "reason", "note"}

* ``expected`` is True when the completion must be judged correct against ``gold``.
* ``reason`` is the expected reason code for an expected-False case:
  "no_answer", "multiple_answers", "refused" (the tests also accept "timeout"),
  or None for a plain wrong answer.

Every label follows docs/math_policy.md; cases the policy does not settle are left
out on purpose.  Labels were decided by hand (policy + mathematics), never by running
a verifier.

The script is deterministic (stdlib only, no randomness).  Sources:
  * hand-written case tables, grouped by category (tests/data/math_labeled_cases.py: the data, apart from
    this generator);
  * realistic long completions built from real MATH-500 worked solutions and
    GSM8K reference answers (``--data-dir``, default ../shared/data beside the repository).

Usage:  python tests/data/make_math_labeled.py [--data-dir DIR] [--out FILE]
"""

import argparse
import json
import os
import re
from collections import Counter
from fractions import Fraction
from math import gcd

from math_labeled_cases import (  # the hand-labeled tables: tests/data/math_labeled_cases.py
    _P,
    CAS_BOMBS,
    FINAL_BOX_TEXTS,
    FINAL_PHRASE_TEXTS,
    LONG_OTHER,
    MA,
    NA,
    NON_ANSWER_TEXT,
    PRED_TABLES,
    RAW_TABLES,
    REF,
    TEMPLATES,
    F,
    T,
)

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DATA_DIR = os.path.normpath(os.path.join(HERE, "..", "..", "..", "shared", "data"))  # ../shared beside the repo
DEFAULT_OUT = os.path.join(HERE, "math_labeled.jsonl")


def wrap(pred, k):
    name, tpl = TEMPLATES[k % len(TEMPLATES)]
    return name, tpl.format(p=pred)


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------


def find_boxes(text):
    """Return [(start, end, content)] for every brace-matched \\boxed{...}."""
    out = []
    for m in re.finditer(r"\\boxed\s*\{", text):
        depth, i = 1, m.end()
        while i < len(text) and depth:
            if text[i] == "{":
                depth += 1
            elif text[i] == "}":
                depth -= 1
            i += 1
        if depth == 0:
            out.append((m.start(), i, text[m.end():i - 1]))
    return out


def replace_only_box(text, pred):
    (s, e, _), = find_boxes(text)
    return text[:s] + "\\boxed{" + pred + "}" + text[e:]


def strip_boxes(text):
    """Replace every \\boxed{X} by X (used for reasoning inside <think>)."""
    for s, e, content in reversed(find_boxes(text)):
        text = text[:s] + content + text[e:]
    return text


def with_commas(n):
    return "{:,}".format(n)


def parse_simple_fraction(gold):
    """Parse \\frac{a}{b}, \\frac43, \\frac 59, \\frac9{19}, \\dfrac{a}{b}, -\\frac..; None otherwise."""
    g = gold.strip().replace("\\dfrac", "\\frac")
    sign = 1
    if g.startswith("-"):
        sign, g = -1, g[1:].strip()
    m = re.fullmatch(r"\\frac\s*(\{\d+\}|\d)\s*(\{\d+\}|\d)", g)
    if not m:
        return None
    a, b = (int(x.strip("{}")) for x in m.groups())
    if b == 0 or gcd(a, b) != 1:
        return None
    return sign * a, b


def decimal_expansion(fr):
    """Exact decimal string for a Fraction: '0.75', '0.\\overline{3}', '0.1\\overline{6}'."""
    sign = "-" if fr < 0 else ""
    fr = abs(fr)
    whole, rem = divmod(fr.numerator, fr.denominator)
    den = fr.denominator
    digits, seen = [], {}
    while rem and rem not in seen:
        seen[rem] = len(digits)
        rem *= 10
        digits.append(str(rem // den))
        rem %= den
    if not digits:
        return sign + str(whole)
    if not rem:
        return "%s%d.%s" % (sign, whole, "".join(digits))
    k = seen[rem]
    return "%s%d.%s\\overline{%s}" % (sign, whole, "".join(digits[:k]), "".join(digits[k:]))


def terminates(fr):
    d = fr.denominator
    for p in (2, 5):
        while d % p == 0:
            d //= p
    return d == 1


def frac_tex(num, den):
    if den == 1:
        return str(num)
    if num < 0:
        return "-\\frac{%d}{%d}" % (-num, den)
    return "\\frac{%d}{%d}" % (num, den)


# --------------------------------------------------------------------------------------
# Case collection
# --------------------------------------------------------------------------------------


class Builder:
    def __init__(self):
        self.rows = []
        self.counters = Counter()

    def add(self, prefix, category, gold, completion, expected, reason, note):
        assert expected in (True, False)
        assert reason in (None, NA, MA, REF), reason
        if expected:
            assert reason is None, (gold, completion)
        self.counters[prefix] += 1
        self.rows.append({
            "id": "%s-%03d" % (prefix, self.counters[prefix]),
            "category": category,
            "gold": gold,
            "completion": completion,
            "expected": expected,
            "reason": reason,
            "note": note,
        })

    def add_pred_table(self, prefix, category, table):
        for k, row in enumerate(table):
            gold, pred, expected, note = row[:4]
            reason = row[4] if len(row) > 4 else None
            tname, completion = wrap(pred, k)
            self.add(prefix, category, gold, completion, expected, reason,
                     "%s | pred: %s | template: %s" % (note, pred, tname))

    def add_raw_table(self, prefix, category, table):
        for gold, completion, expected, reason, note in table:
            self.add(prefix, category, gold, completion, expected, reason, note)


def integer_preds(n, k):
    """(pred, expected, reason, note) for an integer gold; kind chosen by k."""
    kind = ("equiv", "wrong", "equiv", "violating")[k % 4]
    j = k // 4
    if kind == "equiv":
        if abs(n) >= 1000 and j % 2 == 0:
            return with_commas(n), T, None, "equivalent: thousands separators"
        return str(n), T, None, "equivalent: same integer"
    if kind == "wrong":
        opts = [n + 1, n - 1, 2 * n if n not in (0,) else 5, n + 10]
        w = opts[j % len(opts)]
        return str(w), F, None, "wrong value"
    opts = []
    if n >= 2:
        opts.append(("%d+1" % (n - 1), F, None, "violating: unevaluated sum for an integer gold"))
    if n != 0:
        opts.append(("\\frac{%d}{2}" % (2 * n), F, None, "violating: unevaluated fraction for an integer gold"))
    opts.append(("%d \\text{ or } %d" % (n, n + 1), F, MA, "violating: hedge with 'or'"))
    if n > 0:
        opts.append(("\\pm %d" % n, F, MA, "violating: \\pm with a single-value gold"))
    if abs(n) < 99:  # short numbers only: "203, 204" could be misread as a thousands separator
        opts.append(("%d, %d" % (n, n + 1), F, MA, "violating: candidate list"))
    return opts[j % len(opts)]


def fraction_preds(num, den, k):
    fr = Fraction(num, den)
    kind = ("equiv", "wrong", "equiv", "violating")[k % 4]
    j = k // 4
    if kind == "equiv":
        opts = ["%d/%d" % (num, den), "\\dfrac{%d}{%d}" % (abs(num), den) if num > 0 else None,
                decimal_expansion(fr)]
        if abs(num) > den and num > 0:
            w, r = divmod(num, den)
            opts.append("%d\\frac{%d}{%d}" % (w, r, den))
        opts = [o for o in opts if o]
        p = opts[j % len(opts)]
        return p, T, None, "equivalent: " + ("exact decimal" if p == decimal_expansion(fr) else "same rational")
    bumped = fr + Fraction(1, den) if num > 0 else fr - Fraction(1, den)  # reduced, != gold
    if kind == "wrong":
        opts = [frac_tex(bumped.numerator, bumped.denominator)]
        if abs(num) != den:
            opts.append(frac_tex(den if num > 0 else -den, abs(num)))
        return opts[j % len(opts)], F, None, "wrong value"
    opts = [(frac_tex(2 * num, 2 * den), F, None, "violating: unreduced fraction")]
    if not terminates(fr):
        opts.append(("%.3f" % float(fr), F, None, "violating: decimal approximation"))
    opts.append(("%s \\text{ or } %s" % (frac_tex(num, den), frac_tex(bumped.numerator, bumped.denominator)),
                 F, MA, "violating: hedge with 'or'"))
    return opts[j % len(opts)]


def decimal_preds(gold, k):
    g = gold if not gold.startswith(".") else "0" + gold
    fr = Fraction(g)
    kind = ("equiv", "wrong", "equiv", "violating")[k % 4]
    if kind == "equiv":
        if (k // 4) % 2 == 0:
            return g + "0", T, None, "equivalent: trailing zero"
        return frac_tex(fr.numerator, fr.denominator), T, None, "equivalent: exact fraction"
    last = int(g[-1])
    other = g[:-1] + str((last + 1) % 10 if last != 9 else 8)
    if kind == "wrong":
        return other, F, None, "wrong value (decimals compare exactly)"
    return "%s \\text{ or } %s" % (g, other), F, MA, "violating: hedge with 'or'"


def is_simple_number(p):
    return bool(re.fullmatch(r"-?[\d,]+(\.\d+)?|-?\d+/\d+", p))


def _long_completion(r, pred, variant_idx, allow_phrase):
    """(completion, variant) of a MATH-500 solution whose final answer is `pred`."""
    sol = r["solution"].strip()
    variants = ["plain", "think_box", "think_gold_box", "think_phrase"]
    variant_idx += variant_idx // 4  # decouple the variant from the pred kind (both cycle by 4)
    v = variants[variant_idx % len(variants)]
    if v == "think_phrase" and not allow_phrase:  # phrases only for plain numbers
        v = "think_box"
    fin = FINAL_BOX_TEXTS[variant_idx % len(FINAL_BOX_TEXTS)]
    if v == "plain":
        return replace_only_box(sol, pred), v
    if v == "think_box":
        return "<think>\n" + strip_boxes(sol) + "\n</think>\n\n" + fin.format(p=pred), v
    if v == "think_gold_box":  # the original boxed gold stays inside <think>, where it must be ignored
        return "<think>\n" + sol + "\n</think>\n\n" + fin.format(p=pred), v
    ph = FINAL_PHRASE_TEXTS[variant_idx % len(FINAL_PHRASE_TEXTS)]
    return "<think>\n" + strip_boxes(sol) + "\n</think>\n\n" + ph.format(p=pred), v


def _emit_long(b, r, pred, expected, reason, note, variant_idx, allow_phrase):
    """Add one long case when its completion is 300-3000 characters; whether it was added."""
    comp, v = _long_completion(r, pred, variant_idx, allow_phrase)
    if not 300 <= len(comp) <= 3000:
        return False
    b.add("lm500", "long_math500", r["answer"], comp, expected, reason,
          "%s | %s | pred: %s | variant: %s" % (r["unique_id"], note, pred, v))
    return True


def _long_numbers(b, usable, ints, counts):
    """Integer golds (every third problem), simple fractions and decimals: one prediction kind each, in turn."""
    k = 0
    for idx, r in enumerate(ints):
        if idx % 3:  # every third integer-gold problem
            continue
        pred, exp, reason, note = integer_preds(int(r["answer"]), k)
        if _emit_long(b, r, pred, exp, reason, note, k, is_simple_number(pred)):
            k += 1
            counts["int"] += 1
    k = 0
    for r in usable:
        pf = parse_simple_fraction(r["answer"])
        if not pf:
            continue
        pred, exp, reason, note = fraction_preds(pf[0], pf[1], k)
        if _emit_long(b, r, pred, exp, reason, note, k, is_simple_number(pred)):
            k += 1
            counts["frac"] += 1
    k = 0
    for r in usable:
        if not re.fullmatch(r"-?\d*\.\d+", r["answer"].strip()):
            continue
        pred, exp, reason, note = decimal_preds(r["answer"].strip(), k)
        if _emit_long(b, r, pred, exp, reason, note, k, exp and is_simple_number(pred)):
            k += 1
            counts["dec"] += 1


def _long_no_answer(b, ints, counts):
    """No final answer: the box only inside <think>, or the box removed without any marker (10 cases)."""
    k = 0
    for idx, r in enumerate(ints):
        if idx % 7 != 1 or re.search(r"answer", r["solution"], re.I):
            continue
        sol = r["solution"].strip()
        if k % 2 == 0:
            comp, v = "<think>\n" + sol + "\n</think>\n\n" + NON_ANSWER_TEXT, "think_only"
        else:
            comp, v = strip_boxes(sol), "box_removed_no_marker"
        if not 300 <= len(comp) <= 3000:
            continue
        b.add("lm500", "long_math500", r["answer"], comp, F, NA,
              "%s | no final answer (gold only in <think> or as a bare number) | variant: %s"
              % (r["unique_id"], v))
        k += 1
        counts["no_answer"] += 1
        if k >= 10:
            break


def build_long_math500(b, rows):
    """Long completions from real MATH-500 solutions (exactly one \\boxed in each)."""
    usable = [r for r in rows
              if len(find_boxes(r["solution"])) == 1 and "\\fbox" not in r["solution"]
              and "</think>" not in r["solution"] and "<answer>" not in r["solution"]]
    usable.sort(key=lambda r: r["unique_id"])
    by_uid = {r["unique_id"]: r for r in usable}
    ints = [r for r in usable if re.fullmatch(r"-?\d+", r["answer"].strip())]
    counts = Counter()
    _long_numbers(b, usable, ints, counts)
    k = 0
    for short_uid, preds in LONG_OTHER.items():  # hand-chosen predictions for other golds
        r = by_uid.get(_P + short_uid + ".json")
        if r is None:
            continue
        for pred, exp, reason, note in preds:
            if _emit_long(b, r, pred, exp, reason, note, k, False):
                k += 1
                counts["other"] += 1
    _long_no_answer(b, ints, counts)
    return counts


def build_long_gsm8k(b, rows, limit=32):
    cands = []
    for r in rows:
        text, _, gold = r["answer"].rpartition("####")
        gold = gold.strip()
        if not re.fullmatch(r"\d+", gold):
            continue
        reasoning = re.sub(r"<<[^<>]*>>", "", text).strip()
        if re.search(r"answer|boxed|think>", reasoning, re.I):
            continue
        if not 260 <= len(reasoning) <= 1800:
            continue
        calc = None
        for m in re.finditer(r"<<([0-9+\-*/(). ]+)=([0-9.]+)>>", text):
            if re.search(r"[+\-*/]", m.group(1)) and m.group(2) == gold:
                calc = m.group(1).strip()
        cands.append((r["question"], reasoning, gold, calc))
    picked = cands[::max(1, len(cands) // limit)][:limit]
    plan = ["hash_equiv", "think_box_wrong", "think_box_dollar", "hash_hedge",
            "think_box_uneval", "think_phrase_equiv", "no_marker", "hash_wrong"]
    for k, (question, reasoning, gold, calc) in enumerate(picked):
        n = int(gold)
        kind = plan[k % len(plan)]
        think = "<think>\n" + reasoning + "\n</think>\n\n"
        reason = None
        if kind == "hash_equiv":
            p = with_commas(n) if n >= 1000 else gold
            comp, exp, note = reasoning + "\n#### " + p, T, "GSM8K #### with the gold"
        elif kind == "think_box_wrong":
            p = str(n + 1)
            comp, exp, note = think + "So the final answer is $\\boxed{%s}$." % p, F, "wrong value"
        elif kind == "think_box_dollar":
            p = "\\$" + gold
            comp, exp, note = think + "So the final answer is $\\boxed{%s}$." % p, T, "dollar sign"
        elif kind == "hash_hedge":
            p = "%d or %d" % (n, n + 1)
            comp, exp, reason, note = reasoning + "\n#### " + p, F, MA, "hedge in the #### line"
        elif kind == "think_box_uneval":
            p = calc.replace("*", " \\times ") if calc else "%d+1" % (n - 1)
            comp, exp, note = (think + "So the final answer is $\\boxed{%s}$." % p, F,
                               "unevaluated arithmetic for an integer gold")
        elif kind == "think_phrase_equiv":
            p = gold
            comp, exp, note = think + "The answer is %s." % p, T, "answer phrase after </think>"
        elif kind == "no_marker":
            p = None
            comp, exp, reason, note = reasoning, F, NA, "last number is the gold, no final-answer marker"
        else:
            p = str(n * 10)
            comp, exp, note = reasoning + "\n#### " + p, F, "wrong value"
        if len(comp) < 300:
            comp = "Let me work through this carefully, one quantity at a time.\n\n" + comp
        b.add("lgsm", "long_gsm8k", gold, comp, exp, reason,
              "GSM8K: %s | %s | pred: %s | variant: %s" % (question[:60], note, p, kind))


def check(rows):
    """What every row must satisfy; long cases: at most one distinct box in the judged text (after </think>)."""
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)), "duplicate ids"
    for r in rows:
        assert isinstance(r["gold"], str) and r["gold"].strip(), r["id"]
        if r["category"] == "cas_bombs":
            assert r["expected"] is False and r["reason"] == REF
        if r["category"].startswith("long_"):
            judged = r["completion"].rsplit("</think>", 1)[-1]
            assert len({c for _, _, c in find_boxes(judged)}) <= 1, r["id"]
            if r["reason"] == NA:
                assert not find_boxes(judged) and not re.search(r"answer|####", judged, re.I), r["id"]
    n_long = sum(1 for r in rows if 300 <= len(r["completion"]) <= 3000 and r["category"].startswith("long_"))
    assert n_long >= 150, n_long
    return n_long


def summary(rows, out, n_long, long_counts):
    per_cat = Counter(r["category"] for r in rows)
    per_cat_exp = Counter((r["category"], r["expected"]) for r in rows)
    print("wrote %d cases to %s" % (len(rows), out))
    print("%-20s %6s %6s %6s" % ("category", "total", "true", "false"))
    for cat in per_cat:
        print("%-20s %6d %6d %6d" % (cat, per_cat[cat], per_cat_exp[(cat, True)], per_cat_exp[(cat, False)]))
    exp = Counter(r["expected"] for r in rows)
    print("expected: true=%d false=%d" % (exp[True], exp[False]))
    print("reasons (expected false):", dict(Counter(str(r["reason"]) for r in rows if not r["expected"])))
    print("long completions (300-3000 chars):", n_long, "| long_math500 parts:", dict(long_counts))
    print("longest completion: %d chars" % max(len(r["completion"]) for r in rows))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=DEFAULT_DATA_DIR)
    ap.add_argument("--out", default=DEFAULT_OUT)
    args = ap.parse_args()

    b = Builder()
    for prefix, category, table in PRED_TABLES:
        b.add_pred_table(prefix, category, table)
    for prefix, category, table in RAW_TABLES:
        b.add_raw_table(prefix, category, table)
    for k, (gold, comp, note) in enumerate(CAS_BOMBS):
        if k % 4 == 2:  # a few bombs inside a realistic wrapper
            comp = ("<think>\nThe expression grows extremely fast; I will leave it unevaluated.\n</think>\n\n"
                    "The final answer is $" + comp + "$.")
        b.add("cas", "cas_bombs", gold, comp, F, REF, note)
    with open(os.path.join(args.data_dir, "math500.jsonl"), encoding="utf-8") as f:
        math500 = [json.loads(line) for line in f if line.strip()]
    with open(os.path.join(args.data_dir, "gsm8k_test.jsonl"), encoding="utf-8") as f:
        gsm8k = [json.loads(line) for line in f if line.strip()]
    long_counts = build_long_math500(b, math500)
    build_long_gsm8k(b, gsm8k)
    n_long = check(b.rows)

    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        for r in b.rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    with open(args.out, encoding="utf-8") as f:  # round trip
        assert [json.loads(line) for line in f] == b.rows
    summary(b.rows, args.out, n_long, long_counts)


if __name__ == "__main__":
    main()
