"""Rollouts sampled `rollout.max_lag` steps ahead of the learner, with a fixed, recorded lag (asynchronous GRPO).

    source = Ahead(rollouts, lag, timeout_s)
    batch = source.take(step, timer)     # step's batch: sampled k steps ago (0: now, the synchronous loop)
    source.ahead(step)                   # start sampling the batches up to step + k on a thread, the engine's
                                         # weights as they are now (version `step`)
    ... advantages, update ...
    source.wait(timer)                   # that thread done (bounded): the engine is idle, weights may be synced

Versions. The engine's weights have version v after v updates (the sync after step v - 1 delivers it). With
lag k the batch of step n is sampled with version max(n - k, 0): exactly k steps stale once n >= k (the first k
steps train on batches of the starting weights). Which weights sample which batch never depends on timing: the
background thread samples while the learner trains, but the weights are only synced once it is done (`wait`
comes before the sync), so a run is deterministic, the same seeds give the same samples, and a resumed run
equals an uninterrupted one. Each batch carries `version`; the step's `async/lag` is step - version.

Checkpoints. After step n's `wait`, batches n+1 .. n+k are sampled and not yet trained on; `state()` gives them
(with the prompt sampler's position past them) to the checkpoint, and `load` puts them back, so a resumed run
trains on exactly the batches the uninterrupted one would have (they came from weights the checkpoint no longer
holds, so they cannot be sampled again).

Timing. The thread's own phase seconds (rollout, verify) are reported on the line of the step that trains on the
batch (`perf/rollout_s`, `perf/verify_s`: engine time, overlapped with training); the main thread's wait is
`perf/rollout_wait_s`. `wait` gives up after `batch_budget_s()` per batch in flight (rollout.server_timeout_s per
round of sampling, plus the verifiers' deadlines) with an error that names the steps, never a hang.

Lag 0 is the synchronous loop itself: `take` samples the step's batch on the calling thread, `ahead` and `wait`
do nothing.
"""

from __future__ import annotations

from grpo.rollout.client import on_thread
from grpo.rollout.types import EngineError
from grpo.runs.log import Timer
from grpo.stages.rollouts import Batch, Rollouts


class Ahead:
    """The queue of batches sampled ahead (see the module docstring); the one owner of which batch is where."""

    def __init__(self, rollouts: Rollouts, lag: int, timeout_s: float, total: int):
        self.rollouts, self.lag, self.timeout_s, self.total = rollouts, lag, timeout_s, total
        self.ready: dict[int, Batch] = {}  # sampled, not yet trained on, by step
        self._job = None  # (steps, wait) of the thread in flight

    def take(self, step: int, timer) -> Batch:
        """The batch `step` trains on: sampled ahead, or (lag 0, or the first step of a fresh run) now."""
        if step in self.ready:
            batch = self.ready.pop(step)
            for phase, seconds in batch.seconds.items():  # the thread's time, reported on this step's line
                timer.seconds[phase] += seconds
        else:
            batch = self.rollouts.collect(step, timer)
            batch.version = step
        batch.lag = step - batch.version
        return batch

    def ahead(self, step: int) -> None:
        """Start sampling, on a thread, every batch up to step + lag not sampled yet (with the engine's weights
        now: version `step`)."""
        steps = [s for s in range(step + 1, min(step + self.lag, self.total - 1) + 1) if s not in self.ready]
        if not steps:
            return

        def sample() -> list[Batch]:
            out = []
            for s in steps:
                timer = Timer()
                batch = self.rollouts.collect(s, timer)
                batch.version, batch.seconds = step, dict(timer.seconds)
                out.append(batch)
            return out

        self._job = (steps, on_thread(sample))

    def wait(self, timer) -> None:
        """The thread's batches into `ready`; the engine is idle after this (weights may be synced). Raises
        EngineError when it has not finished within batch_budget_s() per batch."""
        if self._job is None:
            return
        steps, wait = self._job
        self._job = None
        limit = self.batch_budget_s() * len(steps)
        with timer("rollout_wait"):
            try:
                batches = wait(limit)
            except TimeoutError:
                raise EngineError(f"the rollouts sampled ahead for steps {steps[0]}-{steps[-1]} did not finish within "
                                  f"{limit:g} s (per batch: rollout.server_timeout_s per round of sampling, plus "
                                  "the verifiers' deadlines): the engine stalled") from None
        self.ready.update(zip(steps, batches))

    def batch_budget_s(self) -> float:
        """The longest one batch may take without anything being wrong: each round of sampling (dynamic sampling
        runs up to grpo.max_sampling_rounds) one generate call of up to `timeout_s`, and its judging, every
        completion's verifier and plug-in calls at reward.timeout_s each, reward.workers at a time."""
        cfg, reward = self.rollouts.cfg, self.rollouts.reward
        rounds = cfg.max_sampling_rounds if cfg.dynamic_sampling else 1
        calls = -(-cfg.prompts_per_step * cfg.group_size // max(reward.workers, 1)) * (1 + len(reward.functions))
        return rounds * (self.timeout_s + calls * reward.timeout_s)

    def state(self) -> dict:
        """The batches sampled and not yet trained on (after `wait`), for the checkpoint."""
        return {step: batch for step, batch in sorted(self.ready.items())}

    def load(self, state: dict | None) -> None:
        self.ready = dict(state or {})
