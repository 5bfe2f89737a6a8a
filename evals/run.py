"""`python -m evals.run`: score a model, or completions from anywhere, on the evaluation suites.

    python -m evals.run --suite math500 --model PATH --output-dir DIR [--preset r1|greedy] [--n N] ...
    python -m evals.run --suite humaneval --completions FILE --output-dir DIR

`--completions FILE` grades precomputed completions: jsonl lines with `id` (the dataset's own id, see
grpo/data/suites.py) and `completion`, several lines per id for n > 1. Every suite writes
`DIR/<suite>/results.json` (`suite`, `n`, `metrics` with `pass@1`, the protocol and every parameter),
`DIR/<suite>/samples.jsonl` (each sample with its verdict) and `DIR/<suite>/report.md`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

from evals.heldout import evaluate_run
from grpo.algo.passk import suite_metrics
from grpo.config import RolloutConfig
from grpo.data.jsonl import read_jsonl
from grpo.data.prompts import THINK_PREFIX
from grpo.data.suites import SUITES, Suite, data_dir, load_rows
from grpo.hub import NotFound
from grpo.model import load
from grpo.rollout import EngineError, EngineUnavailable, SamplingParams, make_engine
from verifiers.route import judge

PRESETS = {  # DeepSeek-R1's protocol (README "Usage Recommendations"), and greedy decoding
    "r1": {"temperature": 0.6, "top_p": 0.95, "think_prefix": True},
    "greedy": {"temperature": 0.0, "top_p": 1.0, "think_prefix": False, "n": 1},
}


class Refused(ValueError):
    """Nothing to evaluate with these arguments (exit code 2 with the message)."""


def read_completions(path: Path, ids: set[str]) -> dict[str, list[str]]:
    """id -> completions, in file order; unknown ids and malformed lines are errors naming the line."""
    out: dict[str, list[str]] = defaultdict(list)
    for where, row in read_jsonl(path):
        if not isinstance(row, dict) or "id" not in row or not isinstance(row.get("completion"), str):
            raise ValueError(f"{where}: needs an 'id' and a string 'completion'")
        key = str(row["id"])
        if key not in ids:
            raise ValueError(f"{where}: id {key!r} is not in the suite")
        out[key].append(row["completion"])
    return dict(out)


def grade(suite: Suite, rows: list[dict], samples: dict[str, list[dict]], *, workers: int,
          timeout_s: float) -> list[dict]:
    """Each problem with its samples judged: [{"id", "row", "samples": [{completion, correct, reason, extracted,
    ...}]}]. Every problem must have the same number of samples."""
    flat = [(suite.id_of(r, r["_index"]), r, s) for r in rows for s in samples[suite.id_of(r, r["_index"])]]
    golds = [str(suite.gold_of(r)) if suite.kind == "math" else {k: v for k, v in r.items() if k != "_index"}
             for _, r, _ in flat]  # a string gold goes to the math verifier, a problem dict to the sandbox
    verdicts = judge([s["completion"] for _, _, s in flat], golds, workers=workers, timeout_s=timeout_s)
    by_id: dict[str, dict] = {}
    for (pid, row, sample), v in zip(flat, verdicts):
        entry = by_id.setdefault(pid, {"id": pid, "row": row, "samples": []})
        entry["samples"].append({**sample, "correct": bool(v.correct), "reason": v.reason,
                                 "extracted": v.extracted if suite.kind == "math" else None})
    return [by_id[suite.id_of(r, r["_index"])] for r in rows]


def summarise(suite: Suite, graded: list[dict]) -> dict:
    problems = [{"correct": [s["correct"] for s in p["samples"]],
                 "answers": [s["extracted"] for s in p["samples"]]} for p in graded]
    metrics = suite_metrics(problems)
    if suite.kind != "math":  # a vote over programs is not defined here
        metrics = {k: v for k, v in metrics.items() if not k.startswith("maj@")}
    every = [s for p in graded for s in p["samples"]]
    metrics["extraction_failure_rate"] = sum(s["reason"] in ("no_answer", "no_code") for s in every) / len(every)
    if all("tokens" in s for s in every):
        metrics["mean_length_tokens"] = sum(s["tokens"] for s in every) / len(every)
        metrics["truncation_rate"] = sum(s.get("finish_reason") == "length" for s in every) / len(every)
    else:
        metrics["mean_length_chars"] = sum(len(s["completion"]) for s in every) / len(every)
    breakdowns = {}
    for fieldname in suite.breakdown:
        groups = defaultdict(list)
        for p in graded:
            groups[str(p["row"].get(fieldname))].append(sum(s["correct"] for s in p["samples"]) / len(p["samples"]))
        breakdowns[fieldname] = {k: {"pass@1": sum(v) / len(v), "problems": len(v)} for k, v in sorted(groups.items())}
    return {"metrics": metrics, "breakdowns": breakdowns}


def write(out: Path, suite: Suite, graded: list[dict], summary: dict, params: dict) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    n = len(graded[0]["samples"])
    results = {"suite": suite.name, "n": n, "problems": len(graded), **summary, "params": params,
               "note": suite.note}
    (out / "results.json").write_text(json.dumps(results, indent=2))
    with (out / "samples.jsonl").open("w") as f:
        for p in graded:
            for s in p["samples"]:
                f.write(json.dumps({"id": p["id"], **s}) + "\n")
    m = summary["metrics"]
    lines = [f"# {suite.name}", "", f"{len(graded)} problems, n = {n} samples each. {suite.note}".rstrip(), "",
             "| metric | value | standard error |", "|---|---:|---:|"]
    lines += [f"| {k} | {v:.4f} | {m.get(k + '_se', float('nan')):.4f} |" for k, v in m.items()
              if not k.endswith("_se")]
    for fieldname, table in summary["breakdowns"].items():
        lines += ["", f"## by {fieldname}", "", f"| {fieldname} | problems | pass@1 |", "|---|---:|---:|"]
        lines += [f"| {k} | {v['problems']} | {v['pass@1']:.4f} |" for k, v in table.items()]
    lines += ["", "## Parameters", "", "```json", json.dumps(params, indent=2), "```", "", "## Samples", ""]
    right = [s for p in graded for s in p["samples"] if s["correct"]][:2]
    wrong = [s for p in graded for s in p["samples"] if not s["correct"]][:2]
    for label, chosen in (("right", right), ("wrong", wrong)):
        for s in chosen:
            lines += [f"**{label}** ({s['reason']}):", "", "```", s["completion"][-800:], "```", ""]
    lines += ["## Plots", ""] + [f"![{name}]({name}.png)" for name in plot(out, graded, summary)]
    (out / "report.md").write_text("\n".join(lines))
    return results


def plot(out: Path, graded: list[dict], summary: dict) -> list[str]:
    """PNG plots next to the report: pass@k against k (n > 1), completion lengths, each breakdown."""
    import matplotlib  # matplotlib: only when a report is drawn

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made = []
    m = summary["metrics"]
    ks = sorted(int(k.split("@")[1]) for k in m if k.startswith("pass@") and not k.endswith("_se"))
    if len(ks) > 1:
        fig, ax = plt.subplots(figsize=(5, 3.5))
        ax.errorbar(ks, [m[f"pass@{k}"] for k in ks], yerr=[m[f"pass@{k}_se"] for k in ks], marker="o",
                    label="pass@k")
        majority = [k for k in ks if f"maj@{k}" in m]
        if majority:
            ax.plot(majority, [m[f"maj@{k}"] for k in majority], marker="s", label="maj@k")
        ax.set_xscale("log", base=2)
        ax.set(xlabel="k", ylabel="fraction of problems", ylim=(0, 1))
        ax.legend()
        made.append(_save(fig, out, "pass_at_k"))
    every = [s for p in graded for s in p["samples"]]
    tokens = all("tokens" in s for s in every)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for label, correct in (("correct", True), ("wrong", False)):
        values = [s["tokens"] if tokens else len(s["completion"]) for s in every if s["correct"] == correct]
        if values:
            ax.hist(values, bins=30, alpha=0.6, label=f"{label} ({len(values)})")
    ax.set(xlabel="completion length (" + ("tokens" if tokens else "characters") + ")", ylabel="samples")
    ax.legend()
    made.append(_save(fig, out, "lengths"))
    for fieldname, table in summary["breakdowns"].items():
        fig, ax = plt.subplots(figsize=(max(4, 0.6 * len(table) + 2), 3.5))
        ax.bar(list(table), [v["pass@1"] for v in table.values()])
        ax.set(xlabel=fieldname, ylabel="pass@1", ylim=(0, 1))
        ax.tick_params(axis="x", labelrotation=45)
        made.append(_save(fig, out, f"by_{fieldname}"))
    return made


def _save(fig, out: Path, name: str) -> str:
    fig.tight_layout()
    fig.savefig(out / f"{name}.png", dpi=100)
    import matplotlib.pyplot as plt  # loaded by plot() already

    plt.close(fig)
    return name


def generate(suite: Suite, rows: list[dict], args) -> dict[str, list[dict]]:
    """Samples from a model through the rollout engine (`--engine`, vLLM when it imports)."""
    model, tokenizer = load(args.model, revision=args.revision, key="--model")
    prompts = []
    for r in rows:
        text = suite.prompt_of(r)
        if tokenizer.chat_template:
            text = tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                                 add_generation_prompt=True)
        prompts.append(text + (THINK_PREFIX if args.think_prefix else ""))
    context = model.config.max_position_embeddings
    longest = max(len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts)
    budget = min(args.max_new_tokens, context - longest)
    if budget < 1:
        raise Refused(f"suite {suite.name}: a prompt of {longest} tokens fills the model's context ({context} tokens, "
                      "its max_position_embeddings): evaluate a model with a longer context (for a preset built "
                      "here, train it with model.max_position_embeddings=2048 or more)")
    engine = make_engine(RolloutConfig(engine=args.engine, max_model_len=context), model, tokenizer)
    try:
        groups = engine.generate(prompts, args.n, SamplingParams(temperature=args.temperature, top_p=args.top_p,
                                                                 max_new_tokens=budget), seed=args.seed)
    finally:
        engine.close()
    return {suite.id_of(r, r["_index"]): [{"completion": c.text, "tokens": len(c.token_ids),
                                           "finish_reason": c.finish_reason} for c in g.completions]
            for r, g in zip(rows, groups)}


HELDOUT = Suite("heldout", "", "math", lambda r, i: str(i), lambda r: "", lambda r: "",
                note="the run's own held-out problems, evaluated as the run evaluated them")


def _run_dir(args) -> int:
    if args.suite not in (None, "heldout"):
        print("evals.run: --run-dir evaluates the run's own held-out set (--suite heldout)", file=sys.stderr)
        return 2
    samples, params = evaluate_run(Path(args.run_dir), args.checkpoint)
    by_id: dict[str, dict] = {}
    for s in samples:
        by_id.setdefault(str(s["problem"]), {"id": str(s["problem"]), "row": {}, "samples": []})["samples"].append(s)
    graded = list(by_id.values())
    results = write(Path(args.output_dir) / "heldout", HELDOUT, graded, summarise(HELDOUT, graded), params)
    print(f"heldout: pass@1 {results['metrics']['pass@1']:.4f} ± {results['metrics']['pass@1_se']:.4f} "
          f"over {results['problems']} problems ({params['source']})")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Evaluate a model, or precomputed completions, on suites.")
    parser.add_argument("--suite", help=f"comma-separated: {', '.join(SUITES)} (with --run-dir: heldout)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="a local model directory or a hub id (ORG/NAME)")
    parser.add_argument("--revision", default="", help="with a hub id: branch, tag or commit (default main)")
    source.add_argument("--run-dir", help="a training run: its own held-out set, evaluated as training did")
    parser.add_argument("--checkpoint", default="final", help="with --run-dir: final or checkpoints/grpo/step_N")
    source.add_argument("--completions", help="jsonl of {id, completion}: grade these instead of generating")
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--preset", choices=list(PRESETS), default="r1")
    parser.add_argument("--n", type=int, help="samples per problem (default: the suite's, 1 for greedy)")
    parser.add_argument("--temperature", type=float)
    parser.add_argument("--top-p", type=float)
    parser.add_argument("--max-new-tokens", type=int, default=32768)
    parser.add_argument("--think-prefix", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--engine", choices=["auto", "vllm", "hf"], default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=0, help="only the first N problems")
    parser.add_argument("--data-dir")
    parser.add_argument("--date-from", default="", help="LiveCodeBench: contest_date >= this (ISO date)")
    parser.add_argument("--date-to", default="", help="LiveCodeBench: contest_date < this")
    parser.add_argument("--difficulty", default="", help="LiveCodeBench: comma-separated easy,medium,hard")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout-s", type=float, default=6.0)
    return parser


def _given(suite: Suite, rows: list[dict], args) -> tuple[list[dict], dict[str, list[dict]], dict]:
    """--completions: (the suite's rows that have completions, samples per id, parameters); an error names the file."""
    every = {suite.id_of(r, r["_index"]) for r in load_rows(suite, data_dir(args.data_dir))}
    given = read_completions(Path(args.completions), every)  # ids outside the filters are skipped
    rows = [r for r in rows if suite.id_of(r, r["_index"]) in given]
    given = {suite.id_of(r, r["_index"]): given[suite.id_of(r, r["_index"])] for r in rows}
    if not rows:
        raise Refused(f"suite {suite.name}: no problem of {args.completions} is left after the filters")
    counts = {len(v) for v in given.values()}
    if len(counts) != 1:
        raise Refused(f"{args.completions}: ids have different numbers of completions {sorted(counts)}")
    samples = {k: [{"completion": c} for c in v] for k, v in given.items()}
    return rows, samples, {"source": str(args.completions), "n": counts.pop()}


def _evaluate_suite(name: str, args) -> None:
    """One suite: its rows, samples (generated or given), verdicts and the files of evals.run."""
    suite = SUITES[name]
    rows = load_rows(suite, data_dir(args.data_dir), limit=args.limit, date_from=args.date_from,
                     date_to=args.date_to, difficulty=args.difficulty)
    if not rows:
        raise Refused(f"suite {name}: no problems left after the filters")
    if args.completions:
        rows, samples, params = _given(suite, rows, args)
    else:
        samples = generate(suite, rows, args)
        params = {"source": args.model, "preset": args.preset, "n": args.n, "temperature": args.temperature,
                  "top_p": args.top_p, "think_prefix": args.think_prefix, "max_new_tokens": args.max_new_tokens,
                  "engine": args.engine, "seed": args.seed}
    params.update({"limit": args.limit, "date_from": args.date_from, "date_to": args.date_to,
                   "difficulty": args.difficulty})
    graded = grade(suite, rows, samples, workers=args.workers, timeout_s=args.timeout_s)
    results = write(Path(args.output_dir) / name, suite, graded, summarise(suite, graded), params)
    print(f"{name}: pass@1 {results['metrics']['pass@1']:.4f} ± {results['metrics']['pass@1_se']:.4f} "
          f"over {results['problems']} problems, n = {results['n']}")


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.run_dir:
        return _run_dir(args)
    if not args.suite:
        parser.error("--suite is required with --model or --completions")
    unknown = [s for s in args.suite.split(",") if s not in SUITES]
    if unknown:
        print(f"evals.run: unknown suite {unknown[0]!r} (known: {', '.join(SUITES)})", file=sys.stderr)
        return 2
    preset = PRESETS[args.preset]
    for name in args.suite.split(","):
        suite_args = argparse.Namespace(**vars(args))  # the preset's and the suite's defaults, per suite
        suite_args.n = args.n or preset.get("n", SUITES[name].n)
        suite_args.temperature = preset["temperature"] if args.temperature is None else args.temperature
        suite_args.top_p = preset["top_p"] if args.top_p is None else args.top_p
        suite_args.think_prefix = preset["think_prefix"] if args.think_prefix is None else args.think_prefix
        try:
            _evaluate_suite(name, suite_args)
        except (Refused, EngineUnavailable, NotFound) as e:
            print(f"evals.run: {e}", file=sys.stderr)
            return 2
        except EngineError as e:
            print(f"evals.run: stopped: {e}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
