"""Server mode, run for real: a `python -m grpo.serve` process (vLLM on CPU here) that the trainer samples from and
syncs its weights into over a gloo process group (grpo/remote.py). One server serves the module; every test
loads its own weights into it, so each also exercises the sync."""

import json
import re
import socket
import time

import pytest
import torch

from grpo import train
from grpo.config import ConfigError, RolloutConfig, load_config
from grpo.model import build_model, build_tokenizer, load
from grpo.remote import EngineError, ServerEngine, buckets
from grpo.rollout import HFEngine, SamplingParams, make_engine, processed_logprobs
from grpo.serve import spawn

vllm_engine = pytest.importorskip("grpo.vllm_engine")
if not vllm_engine.available():
    pytest.skip(f"vllm does not import here: {vllm_engine.IMPORT_ERROR!r}", allow_module_level=True)

PROMPTS = ["Compute 1 + 2.\n<think>\n", "Compute (3 - 4) + 5.\n<think>\n", "Compute 7 - 9.\n<think>\n"]


@pytest.fixture(scope="module")
def server(base):
    process, url = spawn(base, "--cpu-kv-cache-gib", "0.25")
    yield url
    process.terminate()
    process.wait(timeout=60)


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer()


def _gap(model, groups, sampling: SamplingParams) -> float:
    """Largest gap between the engine's sampling logprobs and `model`'s over every completion's tokens."""
    gap = 0.0
    for group in groups:
        for c in group.completions:
            ids = torch.tensor([group.prompt_ids + c.token_ids])
            with torch.no_grad():
                logits = model(ids).logits[0, len(group.prompt_ids) - 1 : -1]
            mine = processed_logprobs(logits, sampling).gather(-1, torch.tensor(c.token_ids)[:, None]).squeeze(-1)
            gap = max(gap, float((torch.tensor(c.logprobs) - mine).abs().max()))
    return gap


def test_after_a_sync_the_server_samples_with_the_learners_logprobs(server, tokenizer):
    first, second = build_model("tiny", tokenizer, seed=1), build_model("tiny", tokenizer, seed=2)
    engine = ServerEngine(server, first, tokenizer, timeout_s=120)  # connecting loads `first`
    try:
        sampling = SamplingParams(temperature=0.7, max_new_tokens=24)
        groups = engine.generate(PROMPTS, 4, sampling, seed=5)
        assert _gap(first, groups, sampling) < 1e-4
        assert _gap(second, groups, sampling) > 0.1  # the check can tell two models apart
        version = engine.version
        engine.load_weights(second.named_parameters())  # tied head: only the embedding is sent
        assert engine.version == version + 1
        groups = engine.generate(PROMPTS, 4, sampling, seed=5)
        assert _gap(second, groups, sampling) < 1e-4
        assert all(len(g.completions) == 4 for g in groups)
        again = engine.generate(PROMPTS, 4, sampling, seed=5)
        assert [c.token_ids for g in again for c in g.completions] == [c.token_ids for g in groups for c in g.completions]
    finally:
        engine.close()


def test_greedy_continuations_match_the_transformers_engine(server, base):
    model, tokenizer = load(str(base))
    engine = make_engine(RolloutConfig(engine="server", server_url=server), model, tokenizer)
    try:
        greedy = SamplingParams(temperature=0.0, max_new_tokens=96)
        ours = engine.generate(PROMPTS, 2, greedy, seed=0)
        theirs = HFEngine(model, tokenizer).generate(PROMPTS, 2, greedy, seed=0)
        for a, b in zip(ours, theirs):
            for x, y in zip(a.completions, b.completions):
                assert (x.token_ids, x.text, x.finish_reason) == (y.token_ids, y.text, y.finish_reason)
                assert x.logprobs == pytest.approx(y.logprobs, abs=1e-4)
        assert any(c.finish_reason == "stop" for g in ours for c in g.completions)
    finally:
        engine.close()


def test_a_sync_of_another_shape_is_refused_before_anything_moves(server, tokenizer):
    model = build_model("tiny", tokenizer, seed=3)
    engine = ServerEngine(server, model, tokenizer, timeout_s=120)
    try:
        version = engine.version
        wrong = [(n, t[:-1] if n == "model.norm.weight" else t) for n, t in model.named_parameters()]
        with pytest.raises(EngineError, match=r"refused POST /sync/begin \(400\).*model\.norm\.weight has shape"):
            engine.load_weights(wrong)
        with pytest.raises(EngineError, match="has no parameter 'model.extra'"):
            engine.load_weights([("model.extra", torch.zeros(3))])
        engine.load_weights(model.named_parameters())  # the group still works after a refusal
        assert engine.version == version + 1
        sampling = SamplingParams(temperature=1.0, max_new_tokens=8)
        assert _gap(model, engine.generate(PROMPTS[:1], 2, sampling, seed=0), sampling) < 1e-4
    finally:
        engine.close()


def test_a_learner_of_another_architecture_is_refused_naming_the_keys(server, tokenizer):
    with pytest.raises(EngineError, match=r"another architecture than the learner's \(.*hidden_size: server 160"):
        ServerEngine(server, build_model("small", tokenizer, seed=0), tokenizer, timeout_s=120)


def test_a_prompt_beyond_the_servers_context_is_refused_with_its_length(server, tokenizer):
    engine = ServerEngine(server, build_model("tiny", tokenizer, seed=0), tokenizer, timeout_s=120)
    try:
        with pytest.raises(EngineError, match="exceeds the server's context of 512"):
            engine.generate(["x" * 500], 1, SamplingParams(max_new_tokens=40), seed=0)
    finally:
        engine.close()


def test_a_server_synced_by_someone_else_refuses_to_sample_with_stale_weights(server, tokenizer):
    """Two trainers on one server (or a server restarted under a trainer): the trainer whose weights are no longer
    the server's gets an error naming both versions instead of samples from weights it did not send."""
    first = ServerEngine(server, build_model("tiny", tokenizer, seed=7), tokenizer, timeout_s=120)
    second = ServerEngine(server, build_model("tiny", tokenizer, seed=8), tokenizer, timeout_s=120)
    try:
        with pytest.raises(EngineError, match=rf"\(409\): the server holds weights version {second.version}, the "
                                              rf"trainer synced version {first.version}"):
            first.generate(PROMPTS[:1], 2, SamplingParams(max_new_tokens=4), seed=0)
        assert second.generate(PROMPTS[:1], 2, SamplingParams(max_new_tokens=4), seed=0)[0].completions
    finally:
        first.close()
        second.close()


def test_a_server_killed_under_a_trainer_is_an_error_not_a_hang(base, tokenizer):
    model, tokenizer = load(str(base))
    process, url = spawn(base, "--cpu-kv-cache-gib", "0.25")
    try:
        engine = ServerEngine(url, model, tokenizer, timeout_s=30)
        assert engine.generate(PROMPTS[:1], 2, SamplingParams(max_new_tokens=8), seed=0)[0].completions
    finally:
        process.kill()
        process.wait(timeout=60)
    start = time.monotonic()
    with pytest.raises(EngineError, match=rf"the vLLM server at {url} did not answer POST /sync/begin"):
        engine.load_weights(model.named_parameters())
    with pytest.raises(EngineError, match=rf"the vLLM server at {url} did not answer POST /generate"):
        engine.generate(PROMPTS[:1], 2, SamplingParams(max_new_tokens=8), seed=0)
    assert time.monotonic() - start < 10  # refused connections: no wait for the timeout
    engine.close()  # nothing to release on a server that is gone


def test_a_server_that_does_not_answer_is_an_error_within_the_timeout(tokenizer):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)  # accepts connections, never answers
    url = f"http://127.0.0.1:{silent.getsockname()[1]}"
    start = time.monotonic()
    try:
        with pytest.raises(EngineError, match=rf"at {url} did not answer GET /info within rollout.server_timeout_s=1"):
            ServerEngine(url, build_model("tiny", tokenizer, seed=0), tokenizer, timeout_s=1)
    finally:
        silent.close()
    assert time.monotonic() - start < 10
    with pytest.raises(EngineError, match="did not answer GET /info.*is `python -m grpo.serve` running there"):
        ServerEngine(url, build_model("tiny", tokenizer, seed=0), tokenizer, timeout_s=1)  # now: refused
    with pytest.raises(EngineError, match="expected http://HOST:PORT"):
        ServerEngine("localhost:8000", build_model("tiny", tokenizer, seed=0), tokenizer, timeout_s=1)


def test_the_server_key_is_required_with_the_server_engine():
    with pytest.raises(ConfigError, match="rollout.server_url is required with rollout.engine server"):
        load_config(None, ["rollout.engine=server"])


def test_a_run_whose_server_is_gone_stops_with_the_reason(tmp_path, base, capsys):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
    code = train.main([f"run.dir={tmp_path / 'run'}", "run.stages=[grpo]", f"model.path={base}", "grpo.steps=2", "grpo.warmup_steps=0",
                       "rollout.engine=server", f"rollout.server_url={url}", "rollout.server_timeout_s=5"])
    assert code == 1
    assert re.search(rf"stopped: the vLLM server at {url} did not answer GET /info", capsys.readouterr().err)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_buckets_keep_order_split_by_dtype_and_size():
    tensors = [("a", torch.zeros(4)), ("b", torch.zeros(4)), ("c", torch.zeros(2, dtype=torch.bfloat16)),
               ("d", torch.zeros(10)), ("e", torch.zeros(1))]
    got = [(str(dtype), [n for n, _ in pairs]) for dtype, pairs in buckets(tensors, limit=32)]
    assert got == [("torch.float32", ["a", "b"]), ("torch.bfloat16", ["c"]), ("torch.float32", ["d"]),
                   ("torch.float32", ["e"])]


def test_a_grpo_run_samples_from_the_server_with_the_learners_weights_every_step(server, tmp_path, base):
    run_dir = tmp_path / "run"
    assert train.main([f"run.dir={run_dir}", "run.stages=[grpo]", f"model.path={base}", "rollout.engine=server",
                       f"rollout.server_url={server}", "grpo.steps=6", "task.ops=2", "task.train_size=300",
                       "task.heldout_size=8", "rollout.max_new_tokens=40", "grpo.prompts_per_step=8",
                       "grpo.group_size=8", "grpo.eval_every=0", "grpo.eval_size=8", "grpo.lr=5e-4",
                       "reward.format_weight=0.5", "grpo.warmup_steps=0"]) == 0
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "reward/mean" in r]
    assert len(steps) == 6
    # the learner moved (rewards varied within groups) and every step's samples came from its current weights
    assert min(r["reward/zero_std_frac"] for r in steps) < 1
    assert max(r["rollout/logprob_gap_max"] for r in steps) < 1e-3
    final, _ = load(str(run_dir / "final"))
    start, _ = load(str(base))
    assert any(not torch.equal(a, b) for a, b in zip(final.state_dict().values(), start.state_dict().values()))
