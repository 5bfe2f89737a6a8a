"""The vLLM rollout engine: the only module that imports vllm.

`VLLMEngine` follows the rollout protocol of `grpo/rollout/types.py` (generate / load_weights / close) with the
transformers engine's sampling parameters and semantics:
- prompts go in as token ids (the same ids the learner sees) and completions are decoded here with the
  run's own tokenizer, so text and ids never depend on vLLM's detokenizer;
- a group of n completions is one request with `n`; `seed` seeds the RNG vLLM's sampler draws from (the
  process's torch RNG, as the engine runs in this process), forked so the caller's RNG state is untouched.
  (Per-request seeds are not used: on CPU, vLLM 0.32 crashes with them once a prefill is split across
  scheduler steps, "CPU Generator does not use offset". Same seed, prompts and weights: same completions.)
- the logprob of a sampled token comes from the processed distribution (vLLM's `processed_logprobs`
  mode: after temperature, top-k and top-p), as in `HFEngine`;
- it stops at the same end-of-turn ids; the stop token is part of `token_ids`, not of the text.

Weights move in place: `load_weights` streams the learner's tensors through vLLM's own loader in every
worker (`reload_weights`, which also redoes the CPU backend's weight repacking), then resets the prefix
cache, so no cached prompt state from the old weights survives. Nothing is written to disk and the engine
is not restarted. The engine runs in this process (`VLLM_ENABLE_V1_MULTIPROCESSING=0`), which is what lets
the tensors pass without serialisation.

On GPU with `sleep=True` the engine sleeps after each `generate` (level 2: weights and KV cache released) so
the learner has the device to itself; `load_weights` wakes the weights, loads, then wakes the KV cache.

Starting an engine costs seconds (tens on CPU), so engines are pooled per process: `acquire` returns an
idle engine built for the same architecture, dtype and memory settings after loading the new weights into
it, and `close` returns the engine to the pool. Idle engines of another shape are shut down first.

Every call whose name or signature changed across vLLM versions is in the "version-specific calls"
section below; an installed vLLM without them fails there with a message that names the version.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import json
import logging
import os
import random
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import torch
from safetensors.torch import save_file

from grpo.rollout.types import (
    Completion,
    EngineError,
    EngineUnavailable,
    Group,
    SamplingParams,
    context_overflow,
    stop_token_ids,
    with_tied_head,
)

os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"  # in-process engine: weight sync passes tensors directly
if "VLLM_LOGGING_LEVEL" not in os.environ:  # our logs, not vLLM's per-call INFO lines
    os.environ["VLLM_LOGGING_LEVEL"] = "WARNING"
    os.environ["GRPO_VLLM_LEVEL_DEFAULTED"] = "1"  # set here, not by the user (grpo/runs/console.py)

try:
    import vllm
    from vllm import LLM
    from vllm import SamplingParams as VllmSamplingParams
    from vllm.inputs import TokensPrompt
except Exception as e:  # noqa: BLE001 - any import failure means "not available", with the reason kept
    vllm = None
    IMPORT_ERROR: Exception | None = e
else:
    IMPORT_ERROR = None


@dataclass(frozen=True)
class EngineSettings:
    dtype: str = "float32"
    max_model_len: int = 512
    cpu_kv_cache_gib: float = 1.0  # CPU: KV cache size (vLLM reserves it up front)
    gpu_memory_utilization: float = 0.3  # GPU: the share of device memory vLLM may take (learner needs the rest)
    sleep: bool = False  # GPU only: release the engine's memory between rollouts
    enforce_eager: bool = True  # no torch.compile / CUDA graphs: starts in seconds; off for long GPU runs
    tensor_parallel_size: int = 1  # > 1: the model split over that many worker processes (devices / CPU cores)
    # the model in vLLM's own worker process(es), not in this one: needed for tensor parallel, and in a process whose
    # torch.distributed is already set up (`accelerate launch`), where vLLM would build its groups on the trainer's
    # process group and wait forever for the other processes to join them
    worker_processes: bool = False
    start_timeout_s: float = 600.0  # a start that has not returned by then is refused, naming where it waits


def available() -> bool:
    return vllm is not None


def require() -> None:
    """Refuse (EngineUnavailable, with the import's error) when vllm does not import here."""
    if vllm is None:
        raise EngineUnavailable(f"rollout.engine=vllm but vllm does not import: {IMPORT_ERROR!r} "
                                "(install the 'cpu' extra on CPU or 'gpu' on GPU, or set rollout.engine=hf)")


def version() -> str:
    return getattr(vllm, "__version__", "unknown")


def on_gpu() -> bool:
    return torch.cuda.is_available()


# ---------------------------------------------------------------------------------------------------------
# version-specific calls (vLLM 0.32: V1 engine, in-place reload, processed logprobs, sleep mode)

def _needs(obj, name: str, what: str) -> None:
    if not hasattr(obj, name):
        raise EngineUnavailable(f"vLLM {version()} has no {type(obj).__name__}.{name} ({what}); "
                                "this trainer needs vLLM >= 0.11 (V1 engine with in-place weight reload)")


def _start(model_dir: str, settings: EngineSettings) -> "LLM":
    """A started engine. vLLM seeds the global RNGs when it starts in-process; the caller's RNG states are put
    back, so a run's randomness does not depend on whether its engine was started or reused."""
    import numpy as np  # installed with vllm

    states = (random.getstate(), np.random.get_state(), torch.get_rng_state())
    try:
        with _stderr_to(os.environ.get("GRPO_THIRD_PARTY_LOG")):
            return _within(settings.start_timeout_s, lambda: _llm(model_dir, settings))
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])


@contextlib.contextmanager
def _stderr_to(path: str | None):
    """While vLLM starts, what is written to the process's stderr (fd 2: torch's C++ NUMA warning, the weight
    loading bar) goes to the run's third-party log at `path` (set by grpo/runs/console.py; None: left as is).
    Errors raised by the start reach the caller as exceptions, said after stderr is back."""
    if not path:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with open(path, "a") as log:
        os.dup2(log.fileno(), 2)
    try:
        yield
    except BaseException:
        _restore(saved)
        print(f"(vLLM's start-up output is in {path})", file=sys.stderr)
        raise
    else:
        _restore(saved)


def _restore(saved_fd: int) -> None:
    sys.stderr.flush()
    os.dup2(saved_fd, 2)
    os.close(saved_fd)


def _within(seconds: float, start):
    """`start()`, run on a thread of its own: its result, or EngineUnavailable naming where it waits when it has not
    returned within `seconds` (a start stuck inside a collective of another process group never returns at all)."""
    box: dict = {}

    def run():
        try:
            box["result"] = start()
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = e

    thread = threading.Thread(target=run, name="vllm-start", daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise EngineUnavailable(f"vLLM did not start within {seconds:g} s (rollout.vllm_start_timeout_s): "
                                f"{_waiting_in(thread)}")
    if "error" in box:
        raise box["error"]
    return box["result"]


def _waiting_in(thread: threading.Thread) -> str:
    """Where a thread is stuck: its innermost frame, and the innermost vLLM frame that led there."""
    frame = sys._current_frames().get(thread.ident)
    if frame is None:
        return "its start thread ended without a result"
    stack = []
    while frame is not None:
        stack.append(frame)
        frame = frame.f_back
    inner, ours = stack[0], [f for f in stack if f"{os.sep}vllm{os.sep}" in f.f_code.co_filename]
    where = f"it waits in {_place(inner)}"
    if ours and ours[0] is not inner:
        where += f", called from vLLM's {_place(ours[0])}"
    if f"{os.sep}distributed{os.sep}" in inner.f_code.co_filename:
        where += ("; that is a torch.distributed collective, which waits for every process of its group: another "
                  "process never joined it")
    return where


def _place(frame) -> str:
    """`Class.function (package/path.py:line)` of a frame."""
    return f"{frame.f_code.co_qualname} ({_short(frame.f_code.co_filename)}:{frame.f_lineno})"


def _short(filename: str) -> str:
    """A file path from its package on (vllm/..., torch/...)."""
    parts = Path(filename).parts
    for i, part in enumerate(parts):
        if part in ("vllm", "torch", "grpo"):
            return "/".join(parts[i:])
    return filename


def _llm(model_dir: str, settings: EngineSettings) -> "LLM":
    memory = ({"gpu_memory_utilization": settings.gpu_memory_utilization, "enable_sleep_mode": settings.sleep}
              if on_gpu() else {"kv_cache_memory_bytes": int(settings.cpu_kv_cache_gib * 2**30)})
    parallel, binding = {}, None
    if settings.worker_processes:  # the weight sync goes through vllm_worker.py
        parallel = {"tensor_parallel_size": settings.tensor_parallel_size, "distributed_executor_backend": "mp",
                    "worker_extension_cls": "grpo.rollout.vllm_worker.WeightSync"}
        if not on_gpu() and not os.environ.get(BIND):
            binding = _cpu_binding(settings.tensor_parallel_size)
    if binding:  # read by the workers as they start; this process's own threads stay unbound
        os.environ[BIND] = binding
    try:
        return LLM(model=model_dir, dtype=settings.dtype, max_model_len=settings.max_model_len, seed=0,
                   logprobs_mode="processed_logprobs", enforce_eager=settings.enforce_eager,
                   **memory, **parallel)
    finally:
        if binding:
            os.environ.pop(BIND, None)


BIND = "VLLM_CPU_OMP_THREADS_BIND"


def _cpu_binding(workers: int) -> str:
    """vLLM's CPU workers bind their threads to NUMA nodes, one node each, and refuse to start with fewer nodes
    than workers; unless the user set VLLM_CPU_OMP_THREADS_BIND, split this process's cores evenly ("0|1")."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < workers:
        raise EngineUnavailable(f"rollout.vllm_tensor_parallel_size {workers} needs at least {workers} CPU cores; "
                                f"this process may use {len(cores)}")
    share = len(cores) // workers
    return "|".join(",".join(str(c) for c in cores[i * share:(i + 1) * share]) for i in range(workers))


class _DerivedBufferWarning(logging.Filter):
    """Drops "RotaryEmbedding: Failed to load weights" from in-place reloads: the rotary tables are computed
    from the config, never loaded, and are put back as they were; the line would repeat at every sync."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("RotaryEmbedding: Failed to load weights")


logging.getLogger("vllm.model_executor.model_loader.reload.layerwise").addFilter(_DerivedBufferWarning())


def _reload_weights(llm, named_tensors: Iterable[tuple[str, torch.Tensor]], *, workers: bool = False) -> None:
    _needs(llm, "collective_rpc", "weight sync")
    if workers:  # to every worker process: names and tensors as two lists (vllm_worker.py), on the CPU
        # (vLLM's message queue passes CPU tensors as buffers; a CUDA one would be pickled and rebuilt on one GPU)
        names, tensors = zip(*((k, v.detach().to("cpu")) for k, v in named_tensors))
        llm.collective_rpc("grpo_reload_weights", args=(list(names), list(tensors)))
    else:
        llm.collective_rpc("reload_weights", kwargs={"weights_iterator": iter(named_tensors)})
    _needs(llm, "reset_prefix_cache", "prefix cache reset after a weight sync")
    llm.reset_prefix_cache()


def _sleep(llm) -> None:
    """Level 1: the weights go to host memory, the KV cache is dropped, and waking gives back a working engine
    whatever is called next (level 2 discards the weights: a second rollout before the next sync, as tool rounds,
    dynamic sampling or a sampled evaluation make, would find none and wait forever)."""
    _needs(llm, "sleep", "sleep mode")
    llm.sleep(level=1)


def _wake(llm, tags: list[str]) -> None:
    _needs(llm, "wake_up", "sleep mode")
    llm.wake_up(tags=tags)


def _sampling_params(sampling: SamplingParams, n: int, stop_ids: set[int], stop: tuple[str, ...] = (),
                     max_tokens: int | None = None) -> "VllmSamplingParams":
    """vLLM's parameters; stop strings need its detokenizer (the text it checks them on; the token ids stay as
    sampled, the one that completed the string included)."""
    return VllmSamplingParams(n=n, temperature=sampling.temperature, top_p=sampling.top_p,
                              top_k=sampling.top_k if sampling.top_k > 0 else -1,
                              max_tokens=sampling.max_new_tokens if max_tokens is None else max_tokens, logprobs=0,
                              stop_token_ids=sorted(stop_ids), ignore_eos=False, detokenize=bool(stop),
                              **({"stop": list(stop), "include_stop_str_in_output": True} if stop else {}))


def _finish(out) -> str:
    """stop (an end-of-turn id), call (a stop string: vLLM names it as the stop reason) or length; a request vLLM
    aborted or failed is an EngineError, never a completion cut at its budget."""
    if out.finish_reason not in ("stop", "length"):
        raise EngineError(f"vLLM ended a request with finish reason {out.finish_reason!r} "
                          f"(stop reason {getattr(out, 'stop_reason', None)!r})")
    if out.finish_reason != "stop":
        return "length"
    return "call" if isinstance(getattr(out, "stop_reason", None), str) else "stop"


def _sampled_logprob(position_logprobs, token_id: int) -> float:
    return float(position_logprobs[token_id].logprob)


def _shutdown(llm) -> None:
    engine_core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
    if engine_core is not None and hasattr(engine_core, "shutdown"):
        engine_core.shutdown()
    try:  # vllm's own module, present whenever an engine ran
        from vllm.distributed.parallel_state import destroy_distributed_environment, destroy_model_parallel
        destroy_model_parallel()
        destroy_distributed_environment()
    except ImportError:
        pass


# ---------------------------------------------------------------------------------------------------------

class VLLMEngine:
    """Rollouts with vLLM; see the module docstring. Build it with `acquire`."""

    def __init__(self, model_dir: str, tokenizer, stop_ids: set[int], settings: EngineSettings, key: str, *,
                 tied: bool):
        require()
        self.tokenizer, self.stop_ids, self.settings, self.key = tokenizer, stop_ids, settings, key
        self.asleep: set[str] = set()  # the memory tags vLLM holds asleep (sleep mode)
        self.tied = tied
        try:
            self.llm = _start(model_dir, settings)
        except EngineUnavailable:  # the start deadline's own message
            raise
        except Exception as e:  # noqa: BLE001 - vLLM raises many kinds; all mean "could not start"
            raise EngineUnavailable(f"vLLM could not start on model {model_dir!r} with {settings}: "
                                    f"{type(e).__name__}: {e}") from e

    def generate(self, prompts: list[str], n: int, sampling: SamplingParams, *, seed: int) -> list[Group]:
        groups = [Group(p, self.tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts]
        refusal = context_overflow([g.prompt_ids for g in groups], sampling.max_new_tokens,
                                   self.settings.max_model_len, "the engine's", prompts)
        if refusal:
            raise EngineError(refusal)
        sampled = self.sample([g.prompt_ids for g in groups], n, sampling, seed=seed, stop_ids=self.stop_ids)
        for group, completions in zip(groups, sampled):
            group.completions = [Completion(ids, self.tokenizer.decode(ids, skip_special_tokens=True), logprobs, reason)
                                 for ids, logprobs, reason in completions]
        return groups

    def sample_rows(self, rows: list[list[int]], sampling: SamplingParams, *, seed: int, stop: tuple[str, ...] = (),
                    max_new: list[int] | None = None) -> list[Completion]:
        """See the protocol (grpo/rollout/types.py): one completion per row of token ids."""
        limits = max_new if max_new is not None else [sampling.max_new_tokens] * len(rows)
        for ids, limit in zip(rows, limits):
            refusal = context_overflow([ids], limit, self.settings.max_model_len, "the engine's")
            if refusal:
                raise EngineError(refusal)
        sampled = self.sample(rows, 1, sampling, seed=seed, stop_ids=self.stop_ids, stop=stop, max_new=limits)
        return [Completion(ids, self.tokenizer.decode(ids, skip_special_tokens=True), logprobs, reason)
                for (ids, logprobs, reason), in sampled]

    def sample(self, prompt_ids: list[list[int]], n: int, sampling: SamplingParams, *, seed: int,
               stop_ids: set[int], stop: tuple[str, ...] = (),
               max_new: list[int] | None = None) -> list[list[tuple[list[int], list[float], str]]]:
        """Per prompt, n (token ids, sampling logprobs, finish reason): `generate` without the text, which is
        what the server (grpo/rollout/server.py) answers with; `stop` strings and per-prompt `max_new` budgets as
        `sample_rows` takes them. The caller has checked the lengths."""
        self._wake_all()
        # vLLM refuses n > 1 when greedy: then each group is n requests of one (identical) completion
        per_request = n if sampling.temperature > 0 else 1
        copies = n // per_request
        requests = [TokensPrompt(prompt_token_ids=ids) for ids in prompt_ids for _ in range(copies)]
        if max_new is None:
            params = _sampling_params(sampling, per_request, stop_ids, stop)
        else:  # one per request
            params = [_sampling_params(sampling, per_request, stop_ids, stop, limit)
                      for limit in max_new for _ in range(copies)]
        if self.settings.worker_processes and sampling.temperature > 0 and on_gpu():
            # the sampler runs in vLLM's worker processes, which this process's RNG does not reach: on GPU each
            # request carries its own seed, derived from the call's (so a rank's, a step's, a resumed run's samples
            # repeat); vLLM's CPU sampler refuses per-request seeds ("CPU Generator does not use offset")
            each = params if isinstance(params, list) else [params] * len(requests)
            params = [p.clone() for p in each]
            for j, p in enumerate(params):
                p.seed = (seed * 1_000_003 + j) % 2**31
        devices = [torch.cuda.current_device()] if on_gpu() else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            outputs = self.llm.generate(requests, params, use_tqdm=False)
        result = [[] for _ in prompt_ids]
        for j, output in enumerate(outputs):
            for out in sorted(output.outputs, key=lambda o: o.index):
                ids = list(out.token_ids)
                logprobs = [_sampled_logprob(lp, t) for lp, t in zip(out.logprobs, ids)]
                result[j // copies].append((ids, logprobs, _finish(out)))
        if self.settings.sleep:
            _sleep(self.llm)
            self.asleep = {"weights", "kv_cache"}
        return result

    def load_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> None:
        if "weights" in self.asleep:
            _wake(self.llm, ["weights"])
            self.asleep.discard("weights")
        _reload_weights(self.llm, with_tied_head(named_tensors, self.tied), workers=self.settings.worker_processes)
        self._wake_all()

    def _wake_all(self) -> None:
        """Wake what is still asleep (vLLM refuses, and then wakes nothing, when a named tag is awake already)."""
        if self.asleep:
            _wake(self.llm, sorted(self.asleep))
            self.asleep = set()

    def close(self) -> None:
        """Back to the pool (the process keeps it for the next `acquire` of the same shape)."""
        _IDLE.setdefault(self.key, self)

    def shutdown(self) -> None:
        if getattr(self, "llm", None) is not None:
            _shutdown(self.llm)
            self.llm = None
            gc.collect()


_IDLE: dict[str, VLLMEngine] = {}


def _architecture_key(model, settings: EngineSettings) -> str:
    config = model.config.to_dict()
    for noise in ("transformers_version", "_name_or_path", "torch_dtype", "dtype"):
        config.pop(noise, None)
    return json.dumps({"config": config, "settings": settings.__dict__}, sort_keys=True, default=str)


def acquire(model, tokenizer, settings: EngineSettings) -> VLLMEngine:
    """An engine holding `model`'s current weights: an idle one of the same architecture and settings with the
    weights loaded in, or a new one started from a temporary copy of the model (deleted once it has loaded)."""
    key = _architecture_key(model, settings)
    stop_ids = stop_token_ids(model, tokenizer)
    engine = _IDLE.pop(key, None)
    if engine is not None:
        engine.tokenizer, engine.stop_ids = tokenizer, stop_ids
        engine.load_weights(model.named_parameters())
        return engine
    release_idle()
    tied = bool(getattr(model.config, "tie_word_embeddings", False))
    with tempfile.TemporaryDirectory(prefix="grpo-vllm-") as tmp:
        _write_model(model, tokenizer, Path(tmp), tied=tied)
        return VLLMEngine(tmp, tokenizer, stop_ids, settings, key, tied=tied)


def _write_model(model, tokenizer, path: Path, *, tied: bool) -> None:
    """The model as a Hugging Face directory vLLM can start from. Not `save_pretrained`: once torch.distributed
    is up it writes only on rank 0 (transformers 5), and under data-parallel rollouts every rank starts an engine."""
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    if tied:
        state.pop("lm_head.weight", None)  # the same tensor as the embedding; the engine ties them itself
    save_file(state, str(path / "model.safetensors"), metadata={"format": "pt"})
    model.config.save_pretrained(path)
    tokenizer.save_pretrained(path)


def release_idle() -> None:
    """Shut down every pooled engine (frees its memory)."""
    while _IDLE:
        _, engine = _IDLE.popitem()
        engine.shutdown()


atexit.register(release_idle)
