"""The worker pool: hard deadlines, memory caps, crashes, and no process left behind."""

import os
import time

import pytest

from verifiers.pool import CRASH, ERROR, MEMORY, OK, TIMEOUT, WorkerPool


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie is dead too
        return f.read().split()[2] != "Z"


def test_results_keep_input_order():
    with WorkerPool("math:factorial", workers=2) as pool:
        outcomes = pool.map([5, 0, 3, 10], timeout_s=5)
    assert [o.status for o in outcomes] == [OK] * 4
    assert [o.value for o in outcomes] == [120, 1, 6, 3628800]


def test_an_item_past_its_deadline_is_killed_and_the_rest_still_run():
    with WorkerPool("time:sleep", workers=2) as pool:
        start = time.monotonic()
        outcomes = pool.map([0.05, 30, 0.05, 30, 0.05], timeout_s=1.0)
        elapsed = time.monotonic() - start
        assert [o.status for o in outcomes] == [OK, TIMEOUT, OK, TIMEOUT, OK]
        assert all(o.seconds < 1.0 + 1.0 for o in outcomes)  # the contract: limit + 1 s
        assert elapsed < 10, "a sleeping worker was waited for instead of killed"
        assert pool.replaced == 2
        assert [o.status for o in pool.map([0.01, 0.01], timeout_s=1.0)] == [OK, OK]  # replacements work


def test_memory_cap_turns_a_blow_up_into_a_result():
    with WorkerPool("builtins:bytearray", workers=1, memory_mb=512) as pool:
        outcomes = pool.map([16, 4 * 1024**3, 16], timeout_s=10)
    assert [o.status for o in outcomes] == [OK, MEMORY, OK]


def test_a_dying_worker_is_a_crash_result_and_is_replaced():
    with WorkerPool("os:_exit", workers=1) as pool:
        outcomes = pool.map([3, 4], timeout_s=5)
        assert [o.status for o in outcomes] == [CRASH, CRASH]
        assert "3" in outcomes[0].value
        assert pool.replaced == 2


def test_an_exception_is_an_error_result_and_the_worker_lives_on():
    with WorkerPool("math:sqrt", workers=1) as pool:
        outcomes = pool.map([-1, 4], timeout_s=5)
        assert [o.status for o in outcomes] == [ERROR, OK]
        assert pool.replaced == 0


def test_no_worker_survives_close():
    pool = WorkerPool("time:sleep", workers=2)
    pool.map([10, 0.01], timeout_s=0.5)
    pids = [w.proc.pid for w in pool._workers]
    pool.close()
    assert not any(_alive(pid) for pid in pids)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="workers"):
        WorkerPool("time:sleep", workers=0)
    with WorkerPool("time:sleep", workers=1) as pool, pytest.raises(ValueError, match="timeout_s"):
        pool.map([0.1], timeout_s=0)


def test_a_worker_that_cannot_start_is_a_clear_error():
    with pytest.raises(RuntimeError, match="no_such_module"):
        with WorkerPool("no_such_module:f", workers=1) as pool:
            pool.map([1], timeout_s=1)
