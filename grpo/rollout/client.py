"""The trainer's side of server mode: `rollout.engine: server` samples from a vLLM server started with
`python -m grpo.serve` (grpo/rollout/server.py) at `rollout.server_url`, and syncs the learner's weights into it.

`ServerEngine` follows the rollout protocol (grpo/rollout/types.py). Prompts go out as token ids of the run's own
tokenizer and completions come back as ids, sampling logprobs and finish reasons, decoded here, as with the
in-process vLLM engine. Connecting checks that the server's model has the learner's architecture, opens a
two-member gloo process group with the server (this process hosts its store and is rank 0) and loads the
learner's weights. A sync flattens the tensors into buckets of at most `BUCKET_BYTES` per dtype, announces
them (names and shapes, checked by the server before anything moves), broadcasts each bucket, and waits for the
server to acknowledge the new version. No vLLM import here: the trainer's machine does not need vLLM.

Every wait (an HTTP answer, the group's rendezvous, a broadcast, the acknowledgement) ends after
`rollout.server_timeout_s` with an `EngineError` that names the server and what it did not do; so one rollout
(one `/generate`) must also finish within it. The server hands each trainer that connects a session id that
every later request carries: a trainer whose server another trainer has connected to since, or that restarted,
is refused (409) instead of sampling from weights it did not send or breaking the other's sync.
"""

from __future__ import annotations

import dataclasses
import http.client
import json
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterable
from datetime import timedelta
from urllib.parse import urlsplit

import torch

from grpo.rollout.types import Completion, EngineError, Group, SamplingParams, context_overflow, stop_token_ids

BUCKET_BYTES = 256 * 2**20  # one broadcast's payload at most (a larger tensor goes alone)
# config fields that say nothing about the network: where it came from, the library that wrote it, how to run it
NOISE = ("_name_or_path", "transformers_version", "architectures", "torch_dtype", "dtype", "use_cache",
         "_attn_implementation_autoset", "output_attentions", "output_hidden_states", "return_dict")


def buckets(named_tensors: Iterable[tuple[str, torch.Tensor]], limit: int = BUCKET_BYTES):
    """(dtype, [(name, tensor), ...]) groups in order, each of one dtype and at most `limit` bytes (a tensor
    larger than `limit` alone); a new bucket starts when the dtype changes."""
    current, size, dtype = [], 0, None
    for name, tensor in named_tensors:
        nbytes = tensor.numel() * tensor.element_size()
        if current and (tensor.dtype != dtype or size + nbytes > limit):
            yield dtype, current
            current, size = [], 0
        current.append((name, tensor))
        size, dtype = size + nbytes, tensor.dtype
    if current:
        yield dtype, current


def on_thread(work):
    """Start `work()` on a thread; returns `wait(timeout=None)`, which gives its result or raises its error
    (TimeoutError when it has not finished within `timeout` seconds). For the calls that must run beside this
    thread's own part of a collective: the group's rendezvous, the server's acknowledgement of a broadcast."""
    box: dict = {}

    def run():
        try:
            box["result"] = work()
        except Exception as e:  # noqa: BLE001 - re-raised by wait()
            box["error"] = e

    thread = threading.Thread(target=run, daemon=True)
    thread.start()

    def wait(timeout: float | None = None):
        thread.join(timeout)
        if "error" in box:
            raise box["error"]
        if "result" not in box:
            raise TimeoutError(f"not done within {timeout:g} s")
        return box["result"]

    return wait


def address_facing(host: str, port: int, timeout_s: float) -> str:
    """This machine's address on the route to host:port (what the other side can connect back to)."""
    with socket.create_connection((host, port), timeout=timeout_s) as s:
        return s.getsockname()[0]


def gloo_pair(store, rank: int, address: str, timeout: timedelta):
    """The two-member gloo group of a trainer (rank 0) and a server (rank 1), listening on `address`: gloo would
    otherwise pick the address the machine's hostname resolves to, which on many hosts is a loopback one."""
    options = torch.distributed.ProcessGroupGloo._Options()
    options._devices = [torch.distributed.ProcessGroupGloo.create_device(hostname=address)]
    options._timeout = timeout
    return torch.distributed.ProcessGroupGloo(store, rank, 2, options)


def config_differences(served: dict, ours: dict) -> list[str]:
    """The config keys whose values differ between the server's model and the learner's (noise left out)."""
    keys = (set(served) | set(ours)) - set(NOISE)
    return sorted(k for k in keys if served.get(k) != ours.get(k))


class ServerEngine:
    """Rollouts from a `python -m grpo.serve` server; see the module docstring. `close` leaves the server up."""

    def __init__(self, url: str, model, tokenizer, *, timeout_s: float):
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname or not parts.port:
            raise EngineError(f"rollout.server_url {url!r}: expected http://HOST:PORT (as printed by grpo.serve)")
        self.url, self.tokenizer, self.timeout_s = url.rstrip("/"), tokenizer, timeout_s
        self.stop_ids = stop_token_ids(model, tokenizer)
        info = self._call("GET", "/info")
        ours = json.loads(json.dumps(model.config.to_dict(), default=str))  # as the server's came: through JSON
        differ = config_differences(info["config"], ours)
        if differ:
            shown = ", ".join(f"{k}: server {info['config'].get(k)!r}, learner {ours.get(k)!r}"
                              for k in differ[:4])
            raise EngineError(f"the vLLM server at {self.url} serves {info['model']}, another architecture than the "
                              f"learner's ({shown}); start it on a model of the learner's architecture")
        self.max_model_len, self.version = int(info["max_model_len"]), int(info["version"])
        self.group, self.session, self._store = None, None, None
        self._open()
        self.load_weights(model.named_parameters())

    # -- HTTP -----------------------------------------------------------------------------------------------
    def _call(self, method: str, path: str, body: dict | None = None) -> dict:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as e:
            try:
                reason = json.loads(e.read()).get("error", e.reason)
            except (ValueError, AttributeError, OSError, http.client.HTTPException):
                reason = e.reason
            raise EngineError(f"the vLLM server at {self.url} refused {method} {path} ({e.code}): {reason}") from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as e:  # refused, timed out, cut off
            raise EngineError(f"the vLLM server at {self.url} did not answer {method} {path}: "
                              f"{getattr(e, 'reason', e) or type(e).__name__} (rollout.server_timeout_s="
                              f"{self.timeout_s:g} s; is `python -m grpo.serve` running there?)") from None
        except ValueError as e:
            raise EngineError(f"the vLLM server at {self.url} answered {method} {path} with something other than "
                              f"JSON: {e}") from None

    # -- weight sync ----------------------------------------------------------------------------------------
    def _open(self) -> None:
        """Join the weight-sync group with the server: the rendezvous runs on a thread while the server is asked
        to join, so a server that refuses at once is reported at once, not after the rendezvous timeout."""
        parts = urlsplit(self.url)
        try:
            host = address_facing(parts.hostname, parts.port, self.timeout_s)
        except OSError as e:
            raise EngineError(f"the vLLM server at {self.url} did not answer: {e}") from None
        timeout = timedelta(seconds=self.timeout_s)
        store = torch.distributed.TCPStore(host, 0, 2, is_master=True, timeout=timeout, wait_for_workers=False)
        joined = on_thread(lambda: gloo_pair(store, 0, host, timeout))
        answer = self._call("POST", "/sync/open", {"host": host, "port": store.port, "timeout_s": self.timeout_s})
        try:
            group = joined(self.timeout_s)
        except Exception as e:  # noqa: BLE001 - gloo's rendezvous error, or no rendezvous within the timeout
            raise EngineError(f"the vLLM server at {self.url} did not join the weight-sync group at "
                              f"{host}:{store.port}: {e}") from None
        self.group, self.session, self._store = group, answer["session"], store

    def load_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Broadcast the tensors to the server, which loads them in place; returns once it has acknowledged."""
        if self.group is None:
            raise EngineError(f"the engine for the vLLM server at {self.url} is closed")
        groups = list(buckets((name, t.detach()) for name, t in named_tensors))
        version = self.version + 1
        meta = [{"dtype": str(dtype).removeprefix("torch."), "tensors": [[n, list(t.shape)] for n, t in pairs]}
                for dtype, pairs in groups]
        self._call("POST", "/sync/begin", {"session": self.session, "version": version, "buckets": meta})
        acknowledged = on_thread(lambda: self._call("POST", "/sync/end", {"session": self.session,
                                                                           "version": version}))
        try:
            for _, pairs in groups:  # one bucket in host memory at a time
                flat = torch.cat([t.reshape(-1).to("cpu") for _, t in pairs])
                self.group.broadcast(flat, 0).wait()
        except Exception as e:  # noqa: BLE001 - gloo's timeout or a closed connection
            raise EngineError(f"weight sync {version} to the vLLM server at {self.url} broke off: {e}") from None
        answer = acknowledged()
        if answer.get("version") != version:
            raise EngineError(f"the vLLM server at {self.url} acknowledged weights version {answer.get('version')}, "
                              f"not {version}")
        self.version = version

    # -- rollouts -------------------------------------------------------------------------------------------
    def generate(self, prompts: list[str], n: int, sampling: SamplingParams, *, seed: int) -> list[Group]:
        groups = [Group(p, self.tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts]
        refusal = context_overflow([g.prompt_ids for g in groups], sampling.max_new_tokens, self.max_model_len,
                                   "the server's", prompts)
        if refusal:
            raise EngineError(refusal)
        answer = self._generate({"prompt_ids": [g.prompt_ids for g in groups], "n": n, "seed": seed}, sampling)
        for group, completions in zip(groups, answer):
            group.completions = [self._completion(c) for c in completions]
        return groups

    def sample_rows(self, rows: list[list[int]], sampling: SamplingParams, *, seed: int, stop: tuple[str, ...] = (),
                    max_new: list[int] | None = None) -> list[Completion]:
        """See the protocol (grpo/rollout/types.py): one completion per row of token ids."""
        limits = max_new if max_new is not None else [sampling.max_new_tokens] * len(rows)
        for ids, limit in zip(rows, limits):
            refusal = context_overflow([ids], limit, self.max_model_len, "the server's")
            if refusal:
                raise EngineError(refusal)
        answer = self._generate({"prompt_ids": rows, "n": 1, "seed": seed, "stop": list(stop), "max_new": limits},
                                sampling)
        return [self._completion(c) for (c,) in answer]

    def _generate(self, body: dict, sampling: SamplingParams) -> list[list[dict]]:
        return self._call("POST", "/generate", {**body, "stop_ids": sorted(self.stop_ids), "version": self.version,
                                                "session": self.session,
                                                "sampling": dataclasses.asdict(sampling)})["completions"]

    def _completion(self, c: dict) -> Completion:
        return Completion(c["token_ids"], self.tokenizer.decode(c["token_ids"], skip_special_tokens=True),
                          c["logprobs"], c["finish_reason"])

    def close(self) -> None:
        """Leave the weight-sync group; the server keeps running (and keeps the last weights)."""
        if self.group is not None:
            self.group, self._store = None, None
            try:
                self._call("POST", "/sync/close", {"session": self.session})
            except EngineError:
                pass  # the server is gone, or serves another trainer now: nothing of ours to release there
