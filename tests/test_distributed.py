"""The learner on several processes (accelerate launch, DDP over gloo on CPU): the update equals the
one-process update of the same global batch."""

import dataclasses
import json
import os
import random
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from engines import vllm_available

from grpo.learner.update import Sample, filled, share, update
from grpo.model import build_model, build_tokenizer, load

HELPER = Path(__file__).with_name("distributed_update.py")
LAUNCH = [sys.executable, "-m", "accelerate.commands.launch"]  # `accelerate launch`, whatever PATH holds
ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _batch(n: int, seed: int = 0) -> list[Sample]:
    """n completions of varied lengths, some left out of the loss, advantages of both signs."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        prompt = [rng.randrange(3, 60) for _ in range(rng.randrange(3, 9))]
        completion = [rng.randrange(3, 60) for _ in range(rng.randrange(1, 14))]
        out.append(Sample(prompt, completion, [-rng.uniform(0.5, 4.0) for _ in completion], rng.uniform(-1.5, 1.5),
                          in_loss=i % 7 != 3))
    return out


def test_filled_adds_completions_out_of_the_loss_until_the_batch_splits():
    samples = _batch(7)
    assert filled(samples, 1) == samples and filled(samples, 7) == samples
    out = filled(samples, 3)
    assert out[:7] == samples and len(out) == 9
    shortest = min(samples, key=lambda s: len(s.prompt_ids) + len(s.token_ids))
    for extra in out[7:]:
        assert extra.in_loss_tokens() == 0 and extra.advantage == 0.0
        assert extra.prompt_ids == shortest.prompt_ids and extra.token_ids == shortest.token_ids


def test_share_deals_every_completion_once():
    samples = _batch(12)
    parts = [share(samples, r, 3) for r in range(3)]
    assert sorted(id(s) for p in parts for s in p) == sorted(id(s) for s in samples)
    assert [len(p) for p in parts] == [4, 4, 4]
    with pytest.raises(ValueError, match="multiple of the number of processes"):
        share(samples, 0, 5)


# accelerate runs FSDP only on accelerators: on CPU, `accelerate launch` with an FSDP config starts plain multi-CPU
# DDP processes (its distributed type MULTI_CPU), which the trainer refuses (test below). So FSDP runs need GPUs.
NEEDS_GPUS = pytest.mark.skipif(torch.cuda.device_count() < 2, reason="FSDP under accelerate needs 2 GPUs (on CPU "
                                "accelerate falls back to DDP); run with GRPO_TEST_GPU=1 on a machine with 2")
TYPES = {"ddp": {"MULTI_CPU", "MULTI_GPU"}, "fsdp": {"FSDP"}}


@pytest.mark.parametrize("backend", ["ddp", pytest.param("fsdp", marks=NEEDS_GPUS)])
@pytest.mark.parametrize("setting", [
    dict(mu=1, micro_batch_size=3, loss="token-mean", kl_coef=0.0, is_cap=None),
    dict(mu=2, micro_batch_size=16, loss="seq-mean-token-mean", kl_coef=0.05, is_cap=2.0),
    dict(mu=2, micro_batch_size=5, loss="token-mean", kl_coef=0.05, is_cap=None, chunk=7, budget=40),
    dict(mu=2, micro_batch_size=2, loss="seq-mean-token-mean", kl_coef=0.05, is_cap=2.0, pack=True),
    dict(mu=2, micro_batch_size=3, loss="token-mean", kl_coef=0.0, is_cap=2.0, skip=True),
    dict(mu=1, micro_batch_size=3, loss="token-mean", kl_coef=0.0, is_cap=None, skip=True, all_zero=True),
    dict(mu=2, micro_batch_size=4, loss="seq-mean-token-mean", kl_coef=0.05, is_cap=2.0, n=15),
], ids=["mu1-token-mean", "mu2-kl-tis", "chunked-logprobs-token-budget", "packed", "zero-advantages-skipped",
        "nothing-to-run", "odd-batch"])
def test_two_processes_update_like_one(tmp_path, setting, backend):
    """DDP (2 processes, gloo on CPU) and FSDP (2 GPUs), the shipped configs/accelerate/ files: the weights after
    the update and the step's metrics equal the one-process update of the same global batch (with `chunk` and
    `budget`: the two processes score through the output head in chunks and cut their shares by a token budget,
    the one process uses full logits and rows; with `pack`, the two processes pack their shares into rows; with
    `skip`, a third of the advantages are 0 and the two processes do not run those completions: 9 of 16 remain,
    topped up to 10 for equal shares; with `all_zero`, every advantage is 0: neither process runs anything, and
    neither waits for the other; with `n` 15, a batch that a dropped group left odd, filled up to 16 with a
    completion out of the loss)."""
    tokenizer = build_tokenizer()
    build_model("tiny", tokenizer, seed=0).save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    loss_kwargs = dict(clip_low=0.2, clip_high=0.28, level="token", aggregation=setting["loss"],
                       kl_coef=setting["kl_coef"], is_cap=setting["is_cap"])
    update_kwargs = dict(mu=setting["mu"], micro_batch_size=setting["micro_batch_size"], temperature=0.9,
                         max_new_tokens=16, max_grad_norm=1e9, loss_kwargs=loss_kwargs)
    samples = _batch(setting.get("n", 16))
    if setting.get("skip"):
        zero = (lambda i: True) if setting.get("all_zero") else (lambda i: i % 3 == 0)
        samples = [dataclasses.replace(s, advantage=0.0) if zero(i) else s for i, s in enumerate(samples)]
    two_kwargs = dict(update_kwargs, logprob_chunk_tokens=setting.get("chunk", 0),
                      max_tokens_per_micro_batch=setting.get("budget", 0), pack=setting.get("pack", False),
                      skip_zero_advantage=setting.get("skip", False))
    torch.save({"samples": samples, "lr": 1.0, "loss_kwargs": loss_kwargs, "update_kwargs": two_kwargs},
               tmp_path / "batch.pt")

    model, _ = load(str(tmp_path / "model"))
    ref_model = load(str(tmp_path / "model"))[0].eval().requires_grad_(False) if setting["kl_coef"] else None
    one = update(model, torch.optim.SGD(model.parameters(), lr=1.0), ref_model, samples,
                 pad_id=tokenizer.pad_token_id, **update_kwargs)

    out = tmp_path / "two.pt"
    config = ROOT / "configs" / "accelerate" / f"{backend}.yaml"
    done = subprocess.run([*LAUNCH, "--config_file", str(config), "--num_processes", "2",
                           "--main_process_port", str(_free_port()), str(HELPER), str(tmp_path / "model"),
                           str(tmp_path / "batch.pt"), str(out)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-3000:]
    two = torch.load(out, weights_only=False)
    assert two["world"] == 2 and two["type"] in TYPES[backend]
    start = load(str(tmp_path / "model"))[0].state_dict()
    moved = max((model.state_dict()[k] - start[k]).abs().max().item() for k in start)
    assert moved == 0 if setting.get("all_zero") else moved > 1e-3  # the update did something (SGD: nothing at 0)
    for k, v in model.state_dict().items():
        torch.testing.assert_close(two["state"][k], v, atol=2e-5, rtol=1e-4, msg=k)
    keys = ["loss/policy", "optim/grad_norm", "loss/tokens"]
    if not setting.get("skip"):  # skipping: the pass's statistics are those of the completions run
        keys += ["loss/clip_frac", "loss/kl", "policy/entropy", "rollout/logprob_gap", "rollout/logprob_gap_max"]
    for key in keys:
        assert two["stats"][key] == pytest.approx(one[key], rel=1e-4, abs=1e-6), key
    skipped = (1.0 if setting.get("all_zero") else 6 / 16) if setting.get("skip") else 0.0
    assert two["stats"]["optim/zero_advantage_skipped"] == skipped


def _launch(backend: str, *args: str) -> None:
    """`accelerate launch --config_file configs/accelerate/<backend>.yaml --num_processes 2 -m grpo.train ARGS`."""
    done = subprocess.run([*LAUNCH, "--config_file", str(ROOT / "configs" / "accelerate" / f"{backend}.yaml"),
                           "--num_processes", "2", "--main_process_port", str(_free_port()), "-m", "grpo.train",
                           *args], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.parametrize("backend, extra", [("ddp", []), ("ddp", ["grpo.lora.rank=4", "grpo.kl_coef=0.05"]),
                                            pytest.param("fsdp", ["grpo.kl_coef=0.05"], marks=NEEDS_GPUS)],
                         ids=["ddp", "ddp-lora", "fsdp"])
def test_grpo_under_accelerate_launch_matches_one_process(tmp_path, base, backend, extra):
    """`accelerate launch --config_file configs/accelerate/{ddp,fsdp}.yaml -m grpo.train`: rank 0 samples, scores
    and logs; both ranks train. Same seed, same batches: the logged rollouts and the final model equal a
    one-process run's (the update within fp32 tolerance); with LoRA adapters under DDP (only they train, on every
    rank); under FSDP on 2 GPUs (sharded weights gathered into rank 0's copy after each update), where a run
    resumed from its step-1 checkpoint also ends where the uninterrupted one did."""
    from safetensors.torch import load_file

    from grpo import train

    args = ["run.stages=[grpo]", f"model.path={base}", "grpo.steps=2", "rollout.engine=hf", "task.train_size=300",
            "task.heldout_size=4", "rollout.max_new_tokens=40", "reward.format_weight=0.5",
            "grpo.prompts_per_step=4", "grpo.group_size=4", "grpo.micro_batch_size=4", "grpo.eval_size=4",
            "grpo.eval_every=0", "grpo.lr=1e-3", "grpo.warmup_steps=0", "grpo.save_every=1", *extra]
    assert train.main([f"run.dir={tmp_path / 'one'}", *args]) == 0
    _launch(backend, f"run.dir={tmp_path / 'two'}", *args)

    def logged(name):
        rows = [json.loads(line) for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
        return [r for r in rows if "reward/mean" in r]

    def final(name):
        return load_file(str(tmp_path / name / "final" / "model.safetensors"))

    one, two = logged("one"), logged("two")
    assert [r["step"] for r in two] == [1, 2]
    assert any(r["reward/zero_std_frac"] < 1 for r in one)  # rewards varied within groups: the updates did work
    for a, b in zip(one, two):
        assert a["reward/mean"] == b["reward/mean"] and a["perf/generated_tokens"] == b["perf/generated_tokens"]
        assert b["loss/policy"] == pytest.approx(a["loss/policy"], rel=1e-4, abs=1e-7)
        assert b["optim/grad_norm"] == pytest.approx(a["optim/grad_norm"], rel=1e-4)
    x, y, start = final("one"), final("two"), load_file(str(base / "model.safetensors"))
    assert max((x[k] - start[k]).abs().max().item() for k in start) > 1e-4  # training moved the model
    for k in x:
        torch.testing.assert_close(y[k], x[k], atol=1e-5, rtol=1e-4, msg=k)
    assert (tmp_path / "two" / "checkpoints" / "grpo" / "step_1" / "trainer_state.pt").exists()
    if backend == "fsdp":  # the sharded run stopped after step 1, resumed from its checkpoint (gathered state)
        assert all("perf/gather_s" in r for r in two)  # the sharded path ran, not a fallback
        shutil.copytree(tmp_path / "two", tmp_path / "three", ignore=shutil.ignore_patterns("final", "summary.json"))
        _launch(backend, "--resume", str(tmp_path / "three"))
        def timeless(rows):
            return [{k: v for k, v in r.items() if not k.startswith("perf/")} for r in rows]

        assert timeless(logged("three")) == timeless(two)
        resumed = final("three")
        for k in y:
            torch.testing.assert_close(resumed[k], y[k], atol=1e-6, rtol=1e-5, msg=k)


def test_a_batch_that_does_not_split_over_the_processes_is_refused(monkeypatch):
    from grpo.config import ConfigError, load_config
    from grpo.learner.team import launch
    from grpo.train import DEFAULT_RECIPE

    monkeypatch.setenv("WORLD_SIZE", "3")
    config = load_config(DEFAULT_RECIPE, ["run.stages=[grpo]", "grpo.prompts_per_step=4", "grpo.group_size=4"])
    with pytest.raises(ConfigError, match=r"multiple of the number of processes \(3\)"):
        launch(config)


def test_stages_other_than_grpo_are_refused_on_several_processes(monkeypatch):
    from grpo.config import ConfigError, load_config
    from grpo.learner.team import launch
    from grpo.train import DEFAULT_RECIPE

    monkeypatch.setenv("WORLD_SIZE", "2")
    for stages in ("[sft,grpo]", "[grpo,generate]"):
        config = load_config(DEFAULT_RECIPE, [f"run.stages={stages}"])
        with pytest.raises(ConfigError, match="only the grpo stage runs on several processes"):
            launch(config)


def test_an_fsdp_config_on_cpu_is_refused_not_run_as_ddp(tmp_path, base):
    """On CPU accelerate turns an FSDP config into plain multi-CPU processes; the trainer says so instead of
    training unsharded under a config that promises sharding."""
    if torch.cuda.device_count() >= 2:
        pytest.skip("GPUs here: FSDP runs (the test above)")
    done = subprocess.run([*LAUNCH, "--config_file", str(ROOT / "configs" / "accelerate" / "fsdp.yaml"),
                           "--num_processes", "2", "--main_process_port", str(_free_port()), "-m", "grpo.train",
                           f"run.dir={tmp_path / 'run'}", "run.stages=[grpo]", f"model.path={base}"],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          cwd=ROOT)
    assert done.returncode != 0
    assert "FSDP runs only on GPUs (or other accelerators)" in done.stdout + done.stderr


def test_lora_under_fsdp_is_refused(monkeypatch):
    from grpo.config import ConfigError, load_config
    from grpo.learner.team import launch
    from grpo.train import DEFAULT_RECIPE

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")  # what `accelerate launch` sets for an FSDP config
    config = load_config(DEFAULT_RECIPE, ["run.stages=[grpo]", "grpo.lora.rank=4"])
    with pytest.raises(ConfigError, match="grpo.lora.rank: LoRA adapters under FSDP are not supported"):
        launch(config)


def test_data_parallel_rollouts_sample_every_share(tmp_path, base):
    """rollout.data_parallel under DDP: each process samples its contiguous share of the step's prompts with its
    own engine; the gathered batch holds every group in the one-process order, and both processes train on it."""
    from safetensors.torch import load_file

    from grpo import train

    args = ["run.stages=[grpo]", f"model.path={base}", "grpo.steps=2", "rollout.engine=hf", "task.train_size=300",
            "task.heldout_size=4", "rollout.max_new_tokens=40", "reward.format_weight=0.5",
            "grpo.prompts_per_step=4", "grpo.group_size=4", "grpo.micro_batch_size=4", "grpo.eval_size=4",
            "grpo.eval_every=0", "grpo.lr=1e-3", "grpo.warmup_steps=0", "grpo.save_every=0",
            "grpo.samples_per_log=4"]
    assert train.main([f"run.dir={tmp_path / 'one'}", *args]) == 0
    _launch("ddp", f"run.dir={tmp_path / 'two'}", "rollout.data_parallel=true", *args)

    def rows(name, file):
        return [json.loads(line) for line in (tmp_path / name / file).read_text().splitlines()]

    def prompts(name):
        return [(r["step"], r["prompt"]) for r in rows(name, "samples.jsonl") if r.get("split") == "train"]

    assert len(prompts("two")) == 8 and prompts("two") == prompts("one")  # 2 steps x 4 groups, same order
    logged = [r for r in rows("two", "metrics.jsonl") if "reward/mean" in r]
    assert [r["rollout/groups_kept"] for r in logged] == [4, 4]  # rank 1's two groups reached the batch
    assert all("perf/rollout_gather_s" in r for r in logged)
    start, end = load_file(str(base / "model.safetensors")), load_file(str(tmp_path / "two" / "final" /
                                                                            "model.safetensors"))
    assert max((end[k] - start[k]).abs().max().item() for k in start) > 1e-4


def test_data_parallel_rollouts_refuse_what_they_cannot_split(monkeypatch):
    from grpo.config import ConfigError, load_config
    from grpo.learner.team import launch
    from grpo.train import DEFAULT_RECIPE

    monkeypatch.setenv("WORLD_SIZE", "2")
    cases = [(["grpo.prompts_per_step=3", "grpo.group_size=4"], "multiple of the number of processes"),
             (["grpo.dynamic_sampling=true"], "not with grpo.dynamic_sampling"),
             (["rollout.engine=server", "rollout.server_url=http://127.0.0.1:8000"], "not with rollout.engine server"),
             (["rollout.vllm_tensor_parallel_size=2"], "not with rollout.vllm_tensor_parallel_size > 1")]
    for extra, message in cases:
        config = load_config(DEFAULT_RECIPE, ["run.stages=[grpo]", "rollout.data_parallel=true", *extra])
        with pytest.raises(ConfigError, match=f"rollout.data_parallel with 2 processes: .*{message}"):
            launch(config)
    lagged = load_config(DEFAULT_RECIPE, ["run.stages=[grpo]", "rollout.engine=server", "rollout.max_lag=1",
                                          "grpo.is_cap=2.0", "rollout.server_url=http://127.0.0.1:8000"])
    with pytest.raises(ConfigError, match="rollout.max_lag: 1 runs on one process for now; with 2 processes set "
                                          "rollout.max_lag: 0"):
        launch(lagged)  # before any process group, model or engine starts
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    config = load_config(DEFAULT_RECIPE, ["run.stages=[grpo]", "rollout.data_parallel=true"])
    with pytest.raises(ConfigError, match="not under FSDP"):
        launch(config)


VLLM = pytest.mark.skipif(not vllm_available(), reason="vllm does not import here")


@VLLM
def test_the_readme_command_runs_with_the_default_engine(tmp_path, base):
    """README: `accelerate launch --config_file configs/accelerate/ddp.yaml --num_processes 2 -m grpo.train --config
    configs/tiny.yaml run.stages=[grpo] model.path=runs/tiny/final`, with the default engine (vLLM on the main
    process), cut to 2 steps; then with rollout.data_parallel (an engine per process). vLLM used to build its groups on
    the trainer's process group and wait forever for the other process; it now runs in a worker process of its own.
    The engine samples with the learner's weights after each sync (logprob gap)."""
    short = ["grpo.steps=2", "grpo.warmup_steps=0", "grpo.eval_size=8", "grpo.save_every=0"]
    for name, extra in (("main", []), ("data_parallel", ["rollout.data_parallel=true"])):
        _launch("ddp", "--config", "configs/tiny.yaml", "run.stages=[grpo]", f"model.path={base}",
                f"run.dir={tmp_path / name}", *short, *extra)
        rows = [json.loads(line) for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
        steps = [r for r in rows if "reward/mean" in r]
        assert [r["step"] for r in steps] == [1, 2], name
        gaps = [r["rollout/logprob_gap"] for r in steps if "rollout/logprob_gap" in r]  # absent: nothing was run
        assert gaps and all(g < 1e-3 for g in gaps), (name, gaps)
        assert json.loads((tmp_path / name / "summary.json").read_text())["stages"]["grpo"]["steps"] == 2


@VLLM
def test_a_vllm_start_that_waits_forever_is_ended_by_its_deadline():
    """The old failure, forced: vLLM started inside the trainer's process (not in a worker process of its own) while
    the other process never joins its groups. The start deadline ends it, naming where it waits."""
    import time

    start = time.monotonic()
    done = subprocess.run([*LAUNCH, "--config_file", str(ROOT / "configs" / "accelerate" / "ddp.yaml"),
                           "--num_processes", "2", "--main_process_port", str(_free_port()),
                           str(Path(__file__).with_name("vllm_stuck_start.py")), "15"],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    out = done.stdout + done.stderr
    assert "REFUSED" in out and "vLLM did not start within 15 s (rollout.vllm_start_timeout_s)" in out, out[-3000:]
    assert "torch.distributed collective" in out and "vLLM's" in out, out[-3000:]
    assert time.monotonic() - start < 200
