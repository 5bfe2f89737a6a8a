"""Server mode: a vLLM engine in its own process, on its own devices (or cores), that trainers sample from and
sync their weights into. The trainer side is `grpo/rollout/client.py` (`rollout.engine: server`).

    python -m grpo.serve --model DIR [--port 8000] [--host 127.0.0.1] [--tensor-parallel-size N] ...

DIR is a Hugging Face model directory; the trainer's model must have the same architecture (checked when it
connects) and its weights replace DIR's at once. HTTP with JSON bodies, one engine call at a time:

    GET  /info           the model's config, the engine's context length, vLLM version, weights version
    POST /generate       {"prompt_ids", "n", "sampling", "seed", "stop_ids", "session", "version"; optional
                         "stop" (strings: finish_reason "call") and "max_new" (a budget per prompt)} ->
                         {"completions": per prompt, n of {"token_ids", "logprobs", "finish_reason"}} (the rollout
                         protocol without the text); refused (409) when the server holds another weights version
                         than the trainer synced
    POST /sync/open      {"host", "port", "timeout_s"}: join a two-member process group with the trainer, which
                         hosts its store at host:port (the trainer is rank 0, this server rank 1); answers
                         {"session"} once both have joined. A new trainer's open ends the previous session
    POST /sync/begin     {"session", "version", "buckets": [{"dtype", "tensors": [[name, shape], ...]}]}: checks
                         every name and shape against the model, then receives the buckets (one flat tensor each,
                         broadcast by the trainer) and, once all have arrived, loads them in place through the
                         engine's weight sync (a broadcast that breaks off leaves the weights as they were)
    POST /sync/end       {"session", "version"}: waits for that load; answers {"version"} or the error
    POST /sync/close     {"session"}: leaves the group

Requests of another session than the connected trainer's get 409; after a load that failed inside vLLM (the
weights are then undefined) every request gets 503 until the server is restarted.

The weights travel over gloo, on CPU tensors: the only backend this project can test (one CPU node). On GPUs an
NCCL group would skip the copies through host memory; not built. Every wait has the trainer's timeout.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import queue
import re
import subprocess
import sys
import threading
import time
import uuid
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM

from grpo.hub import NotFound, model_dir
from grpo.rollout.client import address_facing, gloo_pair
from grpo.rollout.types import EngineError, EngineUnavailable, SamplingParams, context_overflow

log = logging.getLogger("grpo.serve")


class RequestError(ValueError):
    """A request this server refuses (answered with status 400 and the message)."""


class Conflict(RuntimeError):
    """The trainer's idea of the server is not the server's: another session, another weights version (409)."""


class Broken(RuntimeError):
    """The engine's weights are undefined after a load failed inside vLLM: every request gets 503 and the reason."""


def expected_shapes(config) -> dict[str, tuple[int, ...]]:
    """Parameter name -> shape of the transformers model `config` describes (built on the meta device: no memory)."""
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return {name: tuple(p.shape) for name, p in model.state_dict().items()}


def check_buckets(buckets: list[dict], shapes: dict[str, tuple[int, ...]]) -> None:
    for bucket in buckets:
        if not isinstance(getattr(torch, str(bucket.get("dtype")), None), torch.dtype):
            raise RequestError(f"sync: unknown dtype {bucket.get('dtype')!r}")
        for name, shape in bucket["tensors"]:
            if name not in shapes:
                raise RequestError(f"sync: the server's model has no parameter {name!r}")
            if tuple(shape) != shapes[name]:
                raise RequestError(f"sync: {name} has shape {tuple(shape)} here {shapes[name]}: not the same "
                                   "architecture")


def unflatten(flat: torch.Tensor, tensors: list) -> list[tuple[str, torch.Tensor]]:
    """A bucket's flat tensor -> its named tensors, in the order they were flattened."""
    out, offset = [], 0
    for name, shape in tensors:
        size = math.prod(shape)
        out.append((name, flat[offset:offset + size].view(shape)))
        offset += size
    return out


class Server:
    """The engine and the sync state behind the HTTP handler."""

    def __init__(self, model_dir: str, settings):
        from grpo.rollout import vllm_engine  # imports vllm: only a started server needs it

        self.config = AutoConfig.from_pretrained(model_dir)
        self.shapes = expected_shapes(self.config)
        self.engine = vllm_engine.VLLMEngine(model_dir, None, set(), settings, key="server",
                                             tied=bool(getattr(self.config, "tie_word_embeddings", False)))
        self.settings, self.model_dir = settings, model_dir
        self.lock = threading.Lock()  # one engine call at a time: a rollout never sees half-loaded weights
        self.sync = threading.Lock()  # the session and the load in flight change together
        self.group, self.session, self.version = None, None, 0
        self.loading: threading.Thread | None = None
        self.load_error: str | None = None
        self.broken: str | None = None  # set when vLLM failed inside a load: its weights are then undefined

    def _check(self, body: dict) -> None:
        """Refuse a request of a trainer that is not the connected one, or any request once the weights broke."""
        if self.broken:
            raise Broken(f"a weight load failed inside vLLM ({self.broken}), so the engine's weights are "
                         "undefined: restart the server")
        if body.get("session") != self.session:
            raise Conflict("the server has no weight-sync session (it restarted?): reconnect" if self.session is None
                           else "another trainer has connected to this server since: one trainer per server")

    def info(self) -> dict:
        from grpo.rollout import vllm_engine  # imported (with vllm) when the engine started

        return {"model": self.model_dir, "config": self.config.to_dict(), "max_model_len": self.settings.max_model_len,
                "vllm": vllm_engine.version(), "version": self.version}

    def generate(self, body: dict) -> dict:
        sampling = SamplingParams(**body["sampling"])
        max_new = body.get("max_new")  # per prompt (the tool loop's rows), else the sampling's budget for all
        for ids, limit in zip(body["prompt_ids"], max_new or [sampling.max_new_tokens] * len(body["prompt_ids"])):
            refusal = context_overflow([ids], limit, self.settings.max_model_len, "the server's")
            if refusal:
                raise RequestError(refusal)
        with self.lock:
            self._check(body)
            if int(body["version"]) != self.version:
                raise Conflict(f"the server holds weights version {self.version}, the trainer synced version "
                               f"{body['version']}")
            started = time.perf_counter()
            sampled = self.engine.sample(body["prompt_ids"], int(body["n"]), sampling, seed=int(body["seed"]),
                                         stop_ids=set(body["stop_ids"]), stop=tuple(body.get("stop", ())),
                                         max_new=max_new)
        tokens = sum(len(ids) for group in sampled for ids, _, _ in group)
        log.info("generate: %d prompts x %d, %d tokens in %.2f s", len(sampled), int(body["n"]), tokens,
                 time.perf_counter() - started)
        return {"completions": [[{"token_ids": ids, "logprobs": lps, "finish_reason": reason}
                                 for ids, lps, reason in group] for group in sampled]}

    def open(self, body: dict) -> dict:
        """A new trainer: the previous one's session ends (its next request is refused) and a group is joined."""
        timeout = timedelta(seconds=float(body["timeout_s"]))
        with self.sync:
            if self.loading is not None and self.loading.is_alive():
                raise Conflict("a weight sync of the connected trainer is in flight; try again when it is done")
            self.group, self.session, self.loading = None, None, None
            address = address_facing(body["host"], int(body["port"]), timeout.total_seconds())
            store = torch.distributed.TCPStore(body["host"], int(body["port"]), 2, is_master=False, timeout=timeout)
            self.group = gloo_pair(store, 1, address, timeout)
            self.session = uuid.uuid4().hex
        log.info("sync group open with %s:%s (session %s)", body["host"], body["port"], self.session[:8])
        return {"ok": True, "session": self.session}

    def close(self, body: dict) -> dict:
        with self.sync:
            if body.get("session") == self.session and self.session is not None:
                if self.loading is not None:
                    self.loading.join()
                self.group, self.session, self.loading = None, None, None
        return {"ok": True}

    def begin(self, body: dict) -> dict:
        with self.sync:
            self._check(body)
            if self.loading is not None:
                raise RequestError(f"sync: version {self.version + 1} is still loading (POST /sync/end first)")
            buckets = body["buckets"]
            check_buckets(buckets, self.shapes)
            self.load_error = None
            self.loading = threading.Thread(target=self._load, args=(buckets, int(body["version"]), self.group),
                                            daemon=True)
            self.loading.start()
        return {"ok": True}

    def _load(self, buckets: list[dict], version: int, group) -> None:
        """Receive every bucket, then load them: a trainer that dies mid-broadcast leaves the engine untouched
        (vLLM's in-place reload cannot be undone halfway). Costs one full copy of the weights in host memory."""
        started = time.perf_counter()
        try:
            received = []
            for bucket in buckets:
                flat = torch.empty(sum(math.prod(shape) for _, shape in bucket["tensors"]),
                                   dtype=getattr(torch, bucket["dtype"]))
                group.broadcast(flat, 0).wait()
                received.extend(unflatten(flat, bucket["tensors"]))
        except Exception as e:  # noqa: BLE001 - reported to the trainer at /sync/end; the weights are unchanged
            self.load_error = f"the broadcast broke off ({type(e).__name__}: {e}); weights unchanged"
            log.warning("weight sync %d: %s", version, self.load_error)
            return
        with self.lock:
            try:
                self.engine.load_weights(received)
            except Exception as e:  # noqa: BLE001 - the engine may hold a mix of old and new weights now
                self.broken = self.load_error = f"{type(e).__name__}: {e}"
                log.exception("weight sync %d failed inside vLLM", version)
                return
            self.version = version
        size = sum(t.numel() * t.element_size() for _, t in received)
        log.info("sync: weights version %d, %d buckets, %.1f MB in %.2f s", version, len(buckets), size / 1e6,
                 time.perf_counter() - started)

    def end(self, body: dict) -> dict:
        with self.sync:
            self._check(body)
            loading = self.loading
            if loading is None:
                raise RequestError("sync: nothing is loading (POST /sync/begin first)")
        loading.join()
        with self.sync:
            self.loading = None
            if self.load_error is not None:
                raise RuntimeError(f"weight sync {body['version']} failed on the server: {self.load_error}")
        return {"version": self.version}


def handler(server: Server):
    routes = {("GET", "/info"): lambda body: server.info(), ("POST", "/generate"): server.generate,
              ("POST", "/sync/open"): server.open, ("POST", "/sync/close"): server.close,
              ("POST", "/sync/begin"): server.begin, ("POST", "/sync/end"): server.end}

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, method: str) -> None:
            route = routes.get((method, self.path))
            if route is None:
                return self._send(404, {"error": f"no {method} {self.path}"})
            try:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else {}
                self._send(200, route(body))
            except (RequestError, KeyError, TypeError, ValueError) as e:
                self._send(400, {"error": f"{type(e).__name__}: {e}"})
            except Conflict as e:
                self._send(409, {"error": str(e)})
            except Broken as e:
                self._send(503, {"error": str(e)})
            except Exception as e:  # noqa: BLE001 - the trainer gets the reason instead of a dropped connection
                log.exception("%s %s", method, self.path)
                self._send(500, {"error": f"{type(e).__name__}: {e}"})

        def _send(self, status: int, payload: dict) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):  # http.server's naming
            self._answer("GET")

        def do_POST(self):
            self._answer("POST")

        def log_message(self, fmt, *args):  # requests at debug level, not one stderr line each
            log.debug(fmt, *args)

    return Handler


def spawn(model_dir, *options: str, wait_s: float = 300):
    """(process, url) of a `python -m grpo.serve --model model_dir --port 0 *options` started from this checkout,
    once it prints that it is ready (tests and benchmarks); terminate the process when done."""
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    process = subprocess.Popen([sys.executable, "-m", "grpo.serve", "--model", str(model_dir), "--port", "0",
                                *options], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                               cwd=root)
    lines: queue.Queue = queue.Queue()

    def pump():  # reads to the end, so the server never blocks on a full pipe
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    deadline, seen = time.monotonic() + wait_s, []
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=max(deadline - time.monotonic(), 0.01))
        except queue.Empty:
            break
        if line is None:  # the process ended
            break
        seen.append(line)
        found = re.search(r"grpo\.serve ready on (http://\S+)", line)
        if found:
            return process, found.group(1)
    process.kill()
    raise RuntimeError(f"grpo.serve did not start within {wait_s:g} s:\n" + "".join(seen[-30:]))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m grpo.serve", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a model directory or hub id (ORG/NAME) to start from")
    parser.add_argument("--revision", default="", help="hub id only: branch, tag or commit (default main)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--max-model-len", type=int, default=0, help="0: the model's max_position_embeddings")
    parser.add_argument("--tensor-parallel-size", type=int, default=1)
    parser.add_argument("--gpu-memory-utilization", type=float, default=0.9)
    parser.add_argument("--cpu-kv-cache-gib", type=float, default=1.0)
    parser.add_argument("--no-enforce-eager", action="store_true", help="allow torch.compile and CUDA graphs")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    from grpo.rollout import vllm_engine  # imports vllm: after the arguments are read (--help needs none)

    try:
        args.model = str(model_dir(args.model, args.revision, key="--model"))
    except NotFound as e:
        parser.error(str(e))
    if not (Path(args.model) / "config.json").is_file():
        parser.error(f"--model {args.model}: no config.json there (a Hugging Face model directory is needed)")
    max_len = args.max_model_len or AutoConfig.from_pretrained(args.model).max_position_embeddings
    settings = vllm_engine.EngineSettings(
        dtype=args.dtype, max_model_len=max_len, cpu_kv_cache_gib=args.cpu_kv_cache_gib,
        gpu_memory_utilization=args.gpu_memory_utilization, enforce_eager=not args.no_enforce_eager,
        tensor_parallel_size=args.tensor_parallel_size, worker_processes=args.tensor_parallel_size > 1)
    try:  # listen first: a taken port is reported before vLLM spends its start-up time
        httpd = ThreadingHTTPServer((args.host, args.port), BaseHTTPRequestHandler)
    except OSError as e:
        parser.error(f"--host {args.host} --port {args.port}: cannot listen there: {e}")
    try:
        server = Server(args.model, settings)
    except EngineError as e:  # vLLM missing or refusing its settings: bad input, exit 2 as grpo.train does
        httpd.server_close()
        print(f"grpo.serve: {e}", file=sys.stderr)
        sys.exit(2 if isinstance(e, EngineUnavailable) else 1)
    httpd.RequestHandlerClass = handler(server)
    log.info("serving %s on http://%s:%d", args.model, args.host, httpd.server_address[1])
    print(f"grpo.serve ready on http://{args.host}:{httpd.server_address[1]}", flush=True)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()
        vllm_engine.release_idle()
        server.engine.shutdown()


if __name__ == "__main__":
    main()
