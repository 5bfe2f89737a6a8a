"""The trainer's side of server mode without a server (grpo/rollout/client.py): buckets, the config key, and servers
that are silent or gone. The tests against a real `python -m grpo.serve` are in tests/test_server.py."""

import re
import socket
import time

import pytest
import torch

from grpo import train
from grpo.config import ConfigError, load_config
from grpo.model import build_model, build_tokenizer
from grpo.rollout.client import EngineError, ServerEngine, buckets


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer()


def test_buckets_keep_order_split_by_dtype_and_size():
    tensors = [("a", torch.zeros(4)), ("b", torch.zeros(4)), ("c", torch.zeros(2, dtype=torch.bfloat16)),
               ("d", torch.zeros(10)), ("e", torch.zeros(1))]
    got = [(str(dtype), [n for n, _ in pairs]) for dtype, pairs in buckets(tensors, limit=32)]
    assert got == [("torch.float32", ["a", "b"]), ("torch.bfloat16", ["c"]), ("torch.float32", ["d"]),
                   ("torch.float32", ["e"])]


def test_a_server_that_does_not_answer_is_an_error_within_the_timeout(tokenizer):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)  # accepts connections, never answers
    url = f"http://127.0.0.1:{silent.getsockname()[1]}"
    start = time.monotonic()
    try:
        with pytest.raises(EngineError, match=rf"at {url} did not answer GET /info: .*rollout.server_timeout_s=1 s"):
            ServerEngine(url, build_model("tiny", tokenizer, seed=0), tokenizer, timeout_s=1)
    finally:
        silent.close()
    assert time.monotonic() - start < 10
    with pytest.raises(EngineError, match="did not answer GET /info: .*refused.*is `python -m grpo.serve` running"):
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
    code = train.main([f"run.dir={tmp_path / 'run'}", "run.stages=[grpo]", f"model.path={base}", "grpo.steps=2",
                       "grpo.warmup_steps=0", "rollout.engine=server", f"rollout.server_url={url}",
                       "rollout.server_timeout_s=5"])
    assert code == 1
    assert re.search(rf"stopped: the vLLM server at {url} did not answer GET /info", capsys.readouterr().err)
    assert not (tmp_path / "run" / "checkpoints").exists()
