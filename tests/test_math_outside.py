"""Other graders' public test cases (bench/data/outside_graders/: Math-Verify's and Hendrycks MATH's): every case
where our verdict differs from theirs is classified (policy or theirs, with the reason, in classified.json and
BENCHMARKS.md), so a change that makes a new disagreement, or fixes a classified one, shows here."""

import json

from bench.outside_graders import DATA, disagreements


def test_every_disagreement_with_the_outside_graders_is_classified_and_none_is_ours():
    classified = json.loads((DATA / "classified.json").read_text())
    cases, differ = disagreements()
    assert cases == 286
    sources = {d["source"] for d in differ}
    assert sources <= set(classified), sorted(sources - set(classified))
    assert set(classified) <= sources, f"now agreeing, drop from classified.json: {sorted(set(classified) - sources)}"
    assert {c["class"] for c in classified.values()} <= {"policy", "theirs"}
