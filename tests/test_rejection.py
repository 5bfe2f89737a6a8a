"""The filter stage's rule on hand-made traces: every reason, in order, counted and exemplified."""

from grpo.data.decontaminate import SuiteIndex
from grpo.stages.rejection import filter_traces


def trace(pid, completion, correct=True, finish="stop", problem=None):
    return {"problem_id": pid, "problem": problem or f"Compute problem {pid}.", "completion": completion,
            "correct": correct, "finish_reason": finish}


GOOD = "2 + 3 = 5</think>\\boxed{5}"


def test_each_reason_in_order():
    index = SuiteIndex([("math500", "test/x.json", "Find the number of ordered pairs of positive integers whose "
                                                  "product is exactly one hundred")], n=8)
    leaked = "Warm up: find the number of ordered pairs of positive integers whose product is exactly one hundred."
    traces = [
        trace("a", GOOD),                                        # kept
        trace("a", "2 + 3 =  5</think>\\boxed{5}"),              # duplicate of the first (whitespace)
        trace("a", "5</think>\\boxed{5}"),                       # kept (different text)
        trace("a", "5!</think>\\boxed{5}"),                      # over the cap of 2
        trace("b", "5</think>\\boxed{5}", finish="length"),      # truncated
        trace("b", "no think block \\boxed{5}"),                 # malformed
        trace("b", "   "),                                       # malformed (empty)
        trace("b", "1 + 1</think>\\boxed{3}", correct=False),    # rejected
        trace("c", GOOD, problem=leaked),                        # contaminated
        trace("c", GOOD + " ", problem=leaked),                  # contaminated
    ]
    kept, report = filter_traces(traces, think_prefix=True, max_per_problem=2, index=index)
    assert [t["completion"] for t in kept] == [GOOD, "5</think>\\boxed{5}"]
    assert report["removed"] == {"contaminated": 2, "truncated": 1, "malformed": 2, "rejected": 1, "duplicate": 1,
                                 "over_cap": 1}
    assert report["traces"] == 10 and report["kept"] == 2 and report["problems"] == 3 and report["problems_kept"] == 1
    assert report["contaminated_by_suite"] == {"math500": 2}
    assert report["examples"]["contaminated"][0]["why"].startswith("math500 test/x.json: '")
    # pure: the same input gives the same output
    assert filter_traces(traces, think_prefix=True, max_per_problem=2, index=index) == (kept, report)


def test_without_think_requirement_or_prefix():
    traces = [trace("a", "<think>\nx</think>5"), trace("a", "plain answer 5")]
    kept, _ = filter_traces(traces, think_prefix=False)
    assert [t["completion"] for t in kept] == ["<think>\nx</think>5"]
    kept, report = filter_traces(traces, think_prefix=False, require_think=False)
    assert len(kept) == 2 and report["removed"]["malformed"] == 0
