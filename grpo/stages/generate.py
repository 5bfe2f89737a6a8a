"""The `generate` and `filter` stages: a teacher's verified traces, then rejection sampling over them.

generate: `generate.n` traces per training problem from the teacher (the run's model after the stages before,
or `model.path`), sampled through the rollout engine (vLLM or transformers) and judged by the run's verifier.
Problems are cut into shards of `generate.shard_size`; shard k is sampled with seed (run seed, k) and written
to `<run dir>/generate/shard_<k>.jsonl` through a temporary file and a rename, so a crash leaves whole shards
only, and a re-run keeps them and samples exactly the traces an uninterrupted run would. One row per trace:

    {"problem_id", "problem", "answer", "sample", "completion", "extracted", "correct", "reason",
     "length", "finish_reason"}

filter: the shards, in order, through the rejection rule (truncated, malformed, rejected, duplicate, over the
per-problem cap: grpo/stages/rejection.py) and n-gram decontamination against the evaluation suites
(grpo/data/decontaminate.py). Writes `<run dir>/filter/traces.jsonl` (the kept traces) and `filter/report.json`
(counts and examples per reason).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from tqdm import tqdm

from grpo.config import ConfigError, FilterConfig, GenerateConfig
from grpo.data.decontaminate import SuiteIndex
from grpo.data.jsonl import read_jsonl
from grpo.data.suites import SUITES, data_dir
from grpo.rollout.types import SamplingParams
from grpo.runs.files import write_atomic
from grpo.stages.judge import Judge
from grpo.stages.rejection import filter_traces

GENERATE, FILTER = Path("generate"), Path("filter")  # under the run dir


def shard_path(run_dir: Path, k: int) -> Path:
    return run_dir / GENERATE / f"shard_{k:05d}.jsonl"


def run_generate(engine, examples, cfg: GenerateConfig, run_dir: Path, *, judge: Judge, max_new_tokens: int,
                 seed: int) -> dict:
    """Sample and judge traces shard by shard with the run's verifier (`judge`)."""
    start = time.monotonic()
    examples = examples[: cfg.problems] if cfg.problems else examples
    shards = [(k, examples[i : i + cfg.shard_size]) for k, i in enumerate(range(0, len(examples), cfg.shard_size))]
    sampling = SamplingParams(temperature=cfg.temperature, top_p=cfg.top_p, max_new_tokens=max_new_tokens)
    (run_dir / GENERATE).mkdir(parents=True, exist_ok=True)
    _same_settings(run_dir, {"seed": seed, "problems": len(examples), "shard_size": cfg.shard_size, "n": cfg.n,
                             "temperature": cfg.temperature, "top_p": cfg.top_p, "max_new_tokens": max_new_tokens})
    done = [k for k, _ in shards if shard_path(run_dir, k).exists()]
    if done:
        print(f"generate: {len(done)} of {len(shards)} shards already written, kept")
    for k, chunk in tqdm(shards, desc="generate", unit="shard", dynamic_ncols=True):
        if k in done:
            continue
        groups = engine.generate([e.prompt for e in chunk], cfg.n, sampling, seed=hash_seed(seed, k))
        first = k * cfg.shard_size
        traces = [(first + i, e, j, c) for i, (e, g) in enumerate(zip(chunk, groups))
                  for j, c in enumerate(g.completions)]
        results = judge([c.text for *_, c in traces], [e for _, e, _, _ in traces])
        # the completion as the model saw it (with tools: the interpreter's results included, which a student's SFT
        # masks out of its loss); judged on the model's own text
        rows = [{"problem_id": pid, "problem": e.problem, "answer": e.answer, "sample": j, "completion": c.transcript,
                 "extracted": r.extracted, "correct": bool(r.correct), "reason": r.reason,
                 "length": len(c.token_ids), "finish_reason": c.finish_reason}
                for (pid, e, j, c), r in zip(traces, results)]
        write_atomic(shard_path(run_dir, k), "".join(json.dumps(row) + "\n" for row in rows))
    rows = list(read_traces(run_dir, len(shards)))
    n = max(len(rows), 1)
    return {"problems": len(examples), "traces": len(rows), "shards": len(shards),
            "correct_frac": sum(r["correct"] for r in rows) / n,
            "truncated_frac": sum(r["finish_reason"] == "length" for r in rows) / n,
            "mean_length": sum(r["length"] for r in rows) / n, "seconds": round(time.monotonic() - start, 1),
            "out": str(run_dir / GENERATE)}


def hash_seed(seed: int, shard: int) -> int:
    """A shard's sampling seed: distinct per shard, the same in every run with this seed."""
    return (seed * 1_000_003 + shard) % (2**31)


SETTINGS = "settings.json"  # under generate/: what its shards were sampled with


def _same_settings(run_dir: Path, settings: dict) -> None:
    """Shards are kept on a re-run only if they were sampled with these settings: a shard of another size or
    problem count would cover other problems under the same name (some twice, some never). A mismatch is refused,
    naming what changed; the settings are recorded before the first shard is written."""
    path = run_dir / GENERATE / SETTINGS
    if path.exists():
        before = json.loads(path.read_text())
        changed = {k: (before.get(k), v) for k, v in settings.items() if before.get(k) != v}
        if changed and any((run_dir / GENERATE).glob("shard_*.jsonl")):
            what = ", ".join(f"{k} {old!r} -> {new!r}" for k, (old, new) in changed.items())
            raise ConfigError(f"{run_dir / GENERATE}: its shards were sampled with other settings ({what}): "
                              "resume with the same generate settings, or delete that directory to sample again")
    write_atomic(path, json.dumps(settings, indent=2))


def read_traces(run_dir: Path, shards: int | None = None):
    """Every trace of the generate stage, shard by shard, in order (with `shards`: those of shard 0 .. shards-1
    only; without, the count generate/settings.json records, else every shard file)."""
    if shards is None and (run_dir / GENERATE / SETTINGS).exists():
        recorded = json.loads((run_dir / GENERATE / SETTINGS).read_text())
        shards = -(-recorded["problems"] // recorded["shard_size"])
    paths = sorted((run_dir / GENERATE).glob("shard_*.jsonl"))
    if shards is not None:
        paths = [shard_path(run_dir, k) for k in range(shards) if shard_path(run_dir, k).exists()]
    for path in paths:
        for _, row in read_jsonl(path):
            yield row


def run_filter(run_dir: Path, cfg: FilterConfig, *, think_prefix: bool) -> dict:
    """Keep the traces a student may learn from; write them and the report. Returns the report."""
    start = time.monotonic()
    traces = list(read_traces(run_dir))
    if not traces:
        raise FileNotFoundError(f"{run_dir / GENERATE}: no traces to filter; run the generate stage first")
    directory = data_dir(cfg.data_dir or None)
    present = [s for s in cfg.decontaminate if (directory / SUITES[s].file).exists()]
    missing = [s for s in cfg.decontaminate if s not in present]
    if missing:
        print(f"filter: no data for {', '.join(missing)} in {directory}: not decontaminated against them")
    index = None
    if present:
        index = SuiteIndex.from_suites(directory, present, n=cfg.ngram, min_overlap=cfg.min_overlap)
    kept, report = filter_traces(traces, think_prefix=think_prefix, require_think=cfg.require_think,
                                 max_per_problem=cfg.max_per_problem, index=index)
    report.update({"decontaminated_against": present, "suites_missing": missing, "suite_data": str(directory),
                   "seconds": round(time.monotonic() - start, 1), "out": str(run_dir / FILTER / "traces.jsonl")})
    (run_dir / FILTER).mkdir(parents=True, exist_ok=True)
    write_atomic(run_dir / FILTER / "traces.jsonl", "".join(json.dumps(t) + "\n" for t in kept))
    write_atomic(run_dir / FILTER / "report.json", json.dumps(report, indent=2))
    return report
