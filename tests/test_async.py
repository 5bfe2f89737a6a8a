"""Asynchronous rollouts (`rollout.max_lag`, grpo/stages/ahead.py), run for real against a `python -m grpo.serve`
process (vLLM on CPU): the lag each step trains at, the weights that sampled each batch, exact resume after SIGKILL,
and the refusals."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from crashes import logged, weights
from engines import learner_logprobs

from grpo import train
from grpo.config import ConfigError, load_config
from grpo.learner.update import update
from grpo.model import load
from grpo.rollout import SamplingParams
from grpo.runs.checkpoint import latest_checkpoint
from grpo.stages.grpo import CHECKPOINTS

ARGS = ["run.stages=[grpo]", "rollout.engine=server", "task.ops=2", "task.train_size=300", "task.heldout_size=8",
        "rollout.max_new_tokens=40", "rollout.temperature=1.0", "grpo.prompts_per_step=4", "grpo.group_size=8",
        "grpo.eval_every=0", "grpo.eval_size=8", "grpo.lr=1e-3", "reward.format_weight=0.5", "grpo.warmup_steps=0",
        "grpo.is_cap=2.0",
        "reward.functions=[{fn: 'plugin_examples:digit_share'}]"]  # a dense reward: every step moves the weights


def test_a_lag_needs_the_server_engine_and_a_correction(tmp_path):
    with pytest.raises(ConfigError, match="rollout.max_lag 1 samples while the learner trains: it needs "
                                          "rollout.engine: server"):
        load_config(None, ["rollout.max_lag=1", "rollout.engine=vllm", "grpo.is_cap=2.0"])
    with pytest.raises(ConfigError, match="rollout.max_lag 2 trains on samples 2 step"):
        load_config(None, ["rollout.max_lag=2", "rollout.engine=server", "rollout.server_url=http://h:1"])
    with pytest.raises(ConfigError, match="rollout.max_lag must be >= 0"):
        load_config(None, ["rollout.max_lag=-1"])
    config = load_config(None, ["rollout.max_lag=1", "rollout.engine=server", "rollout.server_url=http://h:1",
                                "grpo.is_mask=sequence"])
    assert config.rollout.max_lag == 1


vllm_engine = pytest.importorskip("grpo.rollout.vllm_engine")
needs_vllm = pytest.mark.skipif(not vllm_engine.available(), reason="vllm does not import here")


@pytest.fixture(scope="module")
def server(base):
    if not vllm_engine.available():
        pytest.skip(f"vllm does not import here: {vllm_engine.IMPORT_ERROR!r}")
    from grpo.rollout.server import spawn

    process, url = spawn(base, "--cpu-kv-cache-gib", "0.25")
    yield url
    process.terminate()
    process.wait(timeout=60)


def _steps(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()
            if "reward/mean" in json.loads(line)]


@needs_vllm
def test_lag_one_trains_step_n_on_what_the_weights_of_step_n_minus_1_sampled(server, tmp_path, base):
    run_dir = tmp_path / "lag1"
    assert train.main([f"run.dir={run_dir}", f"model.path={base}", f"rollout.server_url={server}", *ARGS,
                       "rollout.max_lag=1", "grpo.steps=4", "grpo.save_every=1", "grpo.keep_checkpoints=4"]) == 0
    steps = _steps(run_dir)
    assert [r["async/lag"] for r in steps] == [0, 1, 1, 1]  # the first step trains on the starting weights' batch
    assert steps[0]["rollout/logprob_gap_max"] < 1e-3  # sampled by the weights it trains: no gap
    assert all(r["reward/zero_std_frac"] == 0 and r["optim/grad_norm"] > 0 for r in steps)  # every step moved
    assert min(r["rollout/logprob_gap_max"] for r in steps[1:]) > 1e-3  # so every later batch is one update stale
    # checkpoint step_2 (weights of version 2, after steps 0 and 1) holds the batch of step 2, which the engine
    # sampled during step 1 with version 1, the weights of checkpoint step_1
    state = torch.load(run_dir / CHECKPOINTS / "step_2" / "trainer_state.pt", weights_only=False)
    (pending,) = state["ahead"].values()
    assert list(state["ahead"]) == [2] and pending.version == 1
    sampling = SamplingParams(1.0, 1.0, 0, 40)
    for name, close in (("step_1", True), ("step_2", False)):
        model, _ = load(str(run_dir / CHECKPOINTS / name))
        gaps = [float((torch.tensor(c.logprobs) - lp).abs().max()) for group, _, _ in pending.kept
                for c, lp in zip(group.completions, learner_logprobs(model, group, sampling))]
        assert (max(gaps) < 1e-3) is close, name  # the engine's logprobs are version 1's, not version 2's


@needs_vllm
def test_lag_one_survives_sigkill_mid_step_and_resumes_exactly(server, tmp_path, base):
    args = [f"model.path={base}", f"rollout.server_url={server}", *ARGS, "rollout.max_lag=1", "grpo.steps=6",
            "grpo.save_every=1", "grpo.keep_checkpoints=2"]
    straight = tmp_path / "straight"
    assert train.main([f"run.dir={straight}", *args]) == 0

    killed = tmp_path / "killed"
    path = os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])  # plugin_examples
    proc = subprocess.Popen([sys.executable, "-m", "grpo.train", f"run.dir={killed}", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": path})
    root = killed / CHECKPOINTS
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        done = latest_checkpoint(root) if root.exists() else None
        if done is not None and done.name == "step_3":
            time.sleep(0.3)  # inside step 4: its batch sampled ahead, the next one in flight
            break
        time.sleep(0.002)
    assert proc.poll() is None, f"the run ended before it could be killed: {proc.stderr.read()[-2000:]}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert train.main(["--resume", str(killed)]) == 0
    assert logged(straight) == logged(killed)
    a, b = weights(straight / "final"), weights(killed / "final")
    assert all(torch.equal(a[k], b[k]) for k in a)


@needs_vllm
def test_the_importance_weights_of_a_stale_batch_by_hand(server, tmp_path, base):
    """A batch sampled by the starting weights, scored by a learner one update later: the reported engine/learner
    ratio is exp(learner - engine) over the completion tokens, computed here with a plain loop."""
    from grpo.learner.update import Sample
    from grpo.model import build_tokenizer
    from grpo.rollout.client import ServerEngine

    model, tokenizer = load(str(base))
    engine = ServerEngine(server, model, tokenizer, timeout_s=120)
    sampling = SamplingParams(1.0, 1.0, 0, 24)
    groups = engine.generate(["Compute 1 + 2.\n<think>\n", "Compute 7 - 9.\n<think>\n"], 4, sampling, seed=3)
    engine.close()
    samples = [Sample(g.prompt_ids, c.token_ids, c.logprobs, 1.0 if j % 2 else -1.0, True)
               for g in groups for j, c in enumerate(g.completions)]
    loss_kwargs = dict(clip_low=0.2, clip_high=0.28, level="token", aggregation="token-mean", kl_coef=0.0, is_cap=1.5)
    kwargs = dict(mu=1, micro_batch_size=8, pad_id=build_tokenizer().pad_token_id, temperature=1.0,
                  max_new_tokens=24, max_grad_norm=1.0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    update(model, optimizer, None, samples, loss_kwargs=loss_kwargs, **kwargs)  # now one update stale
    ratios = torch.cat([torch.exp(lp - torch.tensor(c.logprobs)) for g in groups
                        for c, lp in zip(g.completions, learner_logprobs(model, g, sampling))])
    stats = update(model, optimizer, None, samples, loss_kwargs=loss_kwargs, **kwargs)
    assert stats["is/weight_mean"] == pytest.approx(float(ratios.mean()), rel=1e-4)
    assert stats["is/weight_max"] == pytest.approx(float(ratios.max()), rel=1e-4)
    assert stats["is/capped_frac"] == pytest.approx(float((ratios > 1.5).float().mean()), abs=1e-6)
    assert float(ratios.std()) > 1e-3  # stale indeed


class _Engine:
    """Rollouts whose sampling (on Ahead's thread) blocks until `go` is set: an engine that stalls, or is slow."""

    def __init__(self):
        import threading

        from grpo.config import GRPOConfig, RewardConfig
        self.go, self.sampled = threading.Event(), []
        # the budget of a batch: 0.2 s of sampling (timeout_s) + 2 completions judged by 2 workers at 0.05 s
        self.cfg, self.reward = GRPOConfig(prompts_per_step=1, group_size=2), RewardConfig(timeout_s=0.05, workers=2)

    def collect(self, step, timer):
        from grpo.stages.rollouts import Batch
        with timer("rollout"):
            self.go.wait(30)
        self.sampled.append(step)
        return Batch()


def test_the_wait_for_batches_sampled_ahead_is_bounded_and_names_the_steps():
    from grpo.rollout.types import EngineError
    from grpo.runs.log import Timer
    from grpo.stages.ahead import Ahead

    engine = _Engine()
    source = Ahead(engine, lag=2, timeout_s=0.2, total=10)
    source.ahead(3)  # steps 4 and 5, with the weights of step 3, on a thread that stalls
    start, timer = time.perf_counter(), Timer()
    with pytest.raises(EngineError, match=r"the rollouts sampled ahead for steps 4-5 did not finish within 0.5 s "
                                          r"\(per batch: rollout.server_timeout_s per round of sampling, plus the "
                                          r"verifiers' deadlines\): the engine stalled"):
        source.wait(timer)
    assert 0.45 < time.perf_counter() - start < 5 and timer.seconds["rollout_wait"] >= 0.45
    engine.go.set()  # an engine that answers in time: its batches are ready, stamped with the version that sampled them
    source = Ahead(engine, lag=2, timeout_s=5, total=10)
    source.ahead(3)
    source.wait(Timer())
    assert sorted(source.ready) == [4, 5] and {b.version for b in source.ready.values()} == {3}

    batch = source.take(5, Timer())
    assert (batch.version, batch.lag, batch.seconds["rollout"] >= 0) == (3, 2, True)


def test_the_wait_allows_every_round_of_dynamic_sampling_and_the_verifiers_deadlines():
    from grpo.config import GRPOConfig, RewardConfig
    from grpo.stages.ahead import Ahead

    engine = _Engine()
    engine.cfg = GRPOConfig(prompts_per_step=4, group_size=4, dynamic_sampling=True, max_sampling_rounds=3)
    engine.reward = RewardConfig(timeout_s=2.0, workers=4, functions=[])
    # per round: 60 s of sampling, 16 completions judged 4 at a time at 2 s each (8 s); three rounds
    assert Ahead(engine, lag=1, timeout_s=60, total=10).batch_budget_s() == 3 * (60 + 8)
