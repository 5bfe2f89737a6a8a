"""Server mode: a vLLM engine in its own process, on its own devices (or cores), that trainers sample from and
sync their weights into. The trainer side is `grpo/remote.py` (`rollout.engine: server`).

    python -m grpo.serve --model DIR [--port 8000] [--host 127.0.0.1] [--tensor-parallel-size N] ...

DIR is a Hugging Face model directory; the trainer's model must have the same architecture (checked when it
connects) and its weights replace DIR's at once. HTTP with JSON bodies, one engine call at a time:

    GET  /info           the model's config, the engine's context length, vLLM version, weights version
    POST /generate       {"prompt_ids", "n", "sampling", "seed", "stop_ids", "version"} -> {"completions": per
                         prompt, n of {"token_ids", "logprobs", "finish_reason"}} (the rollout protocol without the
                         text); refused (409) when the server holds another weights version than the trainer
                         synced: it restarted, or another trainer synced it
    POST /sync/open      {"host", "port", "timeout_s"}: join a two-member process group with the trainer, which
                         hosts its store at host:port (the trainer is rank 0, this server rank 1); answers once
                         both have joined
    POST /sync/begin     {"version", "buckets": [{"dtype", "tensors": [[name, shape], ...]}]}: checks every name
                         and shape against the model, then receives the buckets (one flat tensor each, broadcast
                         by the trainer) and loads them in place through the engine's weight sync as they arrive
    POST /sync/end       {"version"}: waits for that load; answers {"version"} or the error
    POST /sync/close     leaves the group (a new trainer opens its own)

The weights travel over gloo, on CPU tensors: the only backend this project can test (one CPU node). On GPUs an
NCCL group would skip the copies through host memory; not built. Every wait has the trainer's timeout.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import subprocess
import sys
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import torch

from grpo.rollout import SamplingParams

log = logging.getLogger("grpo.serve")


class RequestError(ValueError):
    """A request this server refuses (answered with status 400 and the message)."""


class Conflict(RuntimeError):
    """The trainer's idea of the server's weights is not the server's (answered with status 409)."""


def expected_shapes(config) -> dict[str, tuple[int, ...]]:
    """Parameter name -> shape of the transformers model `config` describes (built on the meta device: no memory)."""
    from transformers import AutoModelForCausalLM

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
        size = _numel(shape)
        out.append((name, flat[offset:offset + size].view(shape)))
        offset += size
    return out


class Server:
    """The engine and the sync state behind the HTTP handler."""

    def __init__(self, model_dir: str, settings):
        from transformers import AutoConfig

        from grpo import vllm_engine

        self.config = AutoConfig.from_pretrained(model_dir)
        self.shapes = expected_shapes(self.config)
        self.engine = vllm_engine.VLLMEngine(model_dir, None, set(), settings, key="server",
                                             tied=bool(getattr(self.config, "tie_word_embeddings", False)))
        self.settings, self.model_dir = settings, model_dir
        self.lock = threading.Lock()  # one engine call at a time: a rollout never sees half-loaded weights
        self.group = None
        self.version = 0
        self.loading: threading.Thread | None = None
        self.load_error: str | None = None

    def info(self) -> dict:
        import vllm

        return {"model": self.model_dir, "config": self.config.to_dict(), "max_model_len": self.settings.max_model_len,
                "vllm": vllm.__version__, "version": self.version}

    def generate(self, body: dict) -> dict:
        sampling = SamplingParams(**body["sampling"])
        too_long = [ids for ids in body["prompt_ids"] if len(ids) + sampling.max_new_tokens > self.settings.max_model_len]
        if too_long:
            raise RequestError(f"a prompt of {len(too_long[0])} tokens plus max_new_tokens {sampling.max_new_tokens} "
                               f"exceeds the server's context of {self.settings.max_model_len} tokens")
        with self.lock:
            if "version" in body and int(body["version"]) != self.version:
                raise Conflict(f"the server holds weights version {self.version}, the trainer synced version "
                               f"{body['version']}: the server restarted or another trainer synced it")
            started = time.perf_counter()
            sampled = self.engine.sample(body["prompt_ids"], int(body["n"]), sampling, seed=int(body["seed"]),
                                         stop_ids=set(body["stop_ids"]))
        tokens = sum(len(ids) for group in sampled for ids, _, _ in group)
        log.info("generate: %d prompts x %d, %d tokens in %.2f s", len(sampled), int(body["n"]), tokens,
                 time.perf_counter() - started)
        return {"completions": [[{"token_ids": ids, "logprobs": lps, "finish_reason": reason}
                                 for ids, lps, reason in group] for group in sampled]}

    def open(self, body: dict) -> dict:
        self.close()
        timeout = timedelta(seconds=float(body["timeout_s"]))
        store = torch.distributed.TCPStore(body["host"], int(body["port"]), 2, is_master=False, timeout=timeout)
        self.group = torch.distributed.ProcessGroupGloo(store, 1, 2, timeout)
        log.info("sync group open with %s:%s", body["host"], body["port"])
        return {"ok": True}

    def close(self) -> dict:
        if self.loading is not None:
            self.loading.join()
        self.group, self.loading = None, None
        return {"ok": True}

    def begin(self, body: dict) -> dict:
        if self.group is None:
            raise RequestError("sync: no process group open (POST /sync/open first)")
        if self.loading is not None:
            raise RequestError(f"sync: version {self.version} is still loading (POST /sync/end first)")
        buckets = body["buckets"]
        check_buckets(buckets, self.shapes)
        self.load_error = None
        self.loading = threading.Thread(target=self._load, args=(buckets, int(body["version"])), daemon=True)
        self.loading.start()
        return {"ok": True}

    def _load(self, buckets: list[dict], version: int) -> None:
        received = 0

        def arriving():
            nonlocal received
            for bucket in buckets:
                size = sum(_numel(shape) for _, shape in bucket["tensors"])
                flat = torch.empty(size, dtype=getattr(torch, bucket["dtype"]))
                self.group.broadcast(flat, 0).wait()
                received += 1
                yield from unflatten(flat, bucket["tensors"])

        with self.lock:
            try:
                started = time.perf_counter()
                self.engine.load_weights(arriving())
                self.version = version
                size = sum(_numel(shape) * getattr(torch, b["dtype"]).itemsize for b in buckets
                           for _, shape in b["tensors"])
                log.info("sync: weights version %d, %d buckets, %.1f MB in %.2f s", version, len(buckets), size / 1e6,
                         time.perf_counter() - started)
            except Exception as e:  # noqa: BLE001 - reported to the trainer at /sync/end
                self.load_error = f"{type(e).__name__}: {e}"
                log.exception("weight sync %d failed", version)
                try:  # take the rest, so the trainer's broadcast does not wait out its timeout
                    for bucket in buckets[received:]:
                        size = sum(_numel(shape) for _, shape in bucket["tensors"])
                        self.group.broadcast(torch.empty(size, dtype=getattr(torch, bucket["dtype"])), 0).wait()
                except Exception as e:  # noqa: BLE001 - the group itself failed: the trainer's wait fails too
                    log.warning("weight sync %d: the rest of the broadcast did not arrive: %s", version, e)

    def end(self, body: dict) -> dict:
        if self.loading is None:
            raise RequestError("sync: nothing is loading (POST /sync/begin first)")
        self.loading.join()
        self.loading = None
        if self.load_error is not None:
            raise RuntimeError(f"weight sync {body['version']} failed on the server: {self.load_error}")
        return {"version": self.version}


def _numel(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def handler(server: Server):
    routes = {("GET", "/info"): lambda body: server.info(), ("POST", "/generate"): server.generate,
              ("POST", "/sync/open"): server.open, ("POST", "/sync/close"): lambda body: server.close(),
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
    root = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    process = subprocess.Popen([sys.executable, "-m", "grpo.serve", "--model", str(model_dir), "--port", "0",
                                *options], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                               cwd=root)
    deadline, seen = time.monotonic() + wait_s, []
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line and process.poll() is not None:
            break
        seen.append(line)
        found = re.search(r"grpo\.serve ready on (http://\S+)", line)
        if found:
            threading.Thread(target=process.stdout.read, daemon=True).start()  # keep its pipe from filling
            return process, found.group(1)
    process.kill()
    raise RuntimeError(f"grpo.serve did not start within {wait_s:g} s:\n" + "".join(seen[-30:]))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m grpo.serve", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="Hugging Face model directory to start from")
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

    from transformers import AutoConfig

    from grpo import vllm_engine

    if not (Path(args.model) / "config.json").is_file():
        parser.error(f"--model {args.model}: no config.json there (a Hugging Face model directory is needed)")
    max_len = args.max_model_len or AutoConfig.from_pretrained(args.model).max_position_embeddings
    settings = vllm_engine.EngineSettings(
        dtype=args.dtype, max_model_len=max_len, cpu_kv_cache_gib=args.cpu_kv_cache_gib,
        gpu_memory_utilization=args.gpu_memory_utilization, enforce_eager=not args.no_enforce_eager,
        tensor_parallel_size=args.tensor_parallel_size)
    server = Server(args.model, settings)
    httpd = ThreadingHTTPServer((args.host, args.port), handler(server))
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
