"""Benchmark: rollout throughput with weight sync, the vLLM engine against the transformers engine, one run.

    python -m bench.rollout [--prompts 64] [--group 8] [--tokens 128] [--rounds 2] [--preset small]

Both engines serve the same learner, a freshly initialised Qwen2 of the `small` preset (~19M parameters,
fp32) with the built-in tokenizer, on the same arithmetic prompts (G completions each, temperature 1, at
most `--tokens` new tokens). A round is what a GRPO step asks of the engine: the learner's weights change
(a small random update, standing in for the optimizer step), the engine takes them (`load_weights`: vLLM's
in-place reload plus prefix cache reset; nothing to copy for the transformers engine, which holds the learner
itself), then generates the batch. Each engine gets one small warm-up round first; its start time is
reported apart. Each engine runs in its own subprocess (vLLM binds the process's OpenMP threads to cores when
it starts, which would otherwise also bind the other side). Figures: generated tokens per second over the
measured rounds, sync included, and their ratio. The last line is one JSON object.

`--server` adds a third side, server mode (`rollout.engine: server`): a `python -m grpo.serve` process started on
the same model, sampled over HTTP and synced over gloo, against the in-process vLLM engine of the same run
(`server_vs_vllm`): what the HTTP round trips, the JSON and the copy of the weights through a socket cost.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from bench import SideFailed, run_side

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def measure(name: str, args) -> dict:
    import torch

    from grpo.config import PromptConfig, RolloutConfig
    from grpo.data.prompts import to_examples
    from grpo.data.tasks import arithmetic
    from grpo.model import build_model, build_tokenizer, parameter_count
    from grpo.rollout import SamplingParams, make_engine

    torch.set_num_threads(args.threads)
    tokenizer = build_tokenizer()
    model = build_model(args.preset, tokenizer, seed=0)
    prompts = [e.prompt for e in to_examples(arithmetic(args.prompts, split="train", seed=0, digits=2, ops=2),
                                             tokenizer, PromptConfig(template="plain"))]
    sampling = SamplingParams(temperature=1.0, max_new_tokens=args.tokens)

    def nudge():  # the optimizer step's stand-in: every weight moves a little
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p), alpha=1e-4)

    start, server = time.perf_counter(), None
    if name == "server":
        import tempfile

        from grpo.rollout.server import spawn

        model_dir = tempfile.mkdtemp(prefix="bench-serve-")
        model.save_pretrained(model_dir)
        tokenizer.save_pretrained(model_dir)
        server, url = spawn(model_dir)
        engine = make_engine(RolloutConfig(engine="server", server_url=url), model, tokenizer)
    else:
        engine = make_engine(RolloutConfig(engine=name), model, tokenizer)
    started = time.perf_counter() - start
    engine.generate(prompts[:8], args.group, SamplingParams(temperature=1.0, max_new_tokens=16), seed=0)  # warm-up
    tokens, sync_s, total_s = 0, 0.0, 0.0
    for r in range(args.rounds):
        nudge()
        t0 = time.perf_counter()
        engine.load_weights(model.state_dict().items())
        t1 = time.perf_counter()
        groups = engine.generate(prompts, args.group, sampling, seed=r + 1)
        total_s += time.perf_counter() - t0
        sync_s += t1 - t0
        tokens += sum(len(c.token_ids) for g in groups for c in g.completions)
    if server is not None:
        engine.close()
        server.terminate()
        server.wait(timeout=60)
    return {"tokens_per_s": round(tokens / total_s, 1), "generated_tokens": tokens, "seconds": round(total_s, 2),
            "sync_s_per_round": round(sync_s / args.rounds, 4), "start_s": round(started, 2),
            "model_parameters": parameter_count(model)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--preset", default="small")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--server", action="store_true", help="also measure server mode (python -m grpo.serve)")
    parser.add_argument("--side", choices=["vllm", "hf", "server"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        print(json.dumps(measure(args.side, args)))
        return
    result = {"machine": f"{os.uname().machine} {os.cpu_count()} cpus", "threads": args.threads,
              "prompts": args.prompts, "group": args.group, "max_new_tokens": args.tokens, "rounds": args.rounds}
    for name in ("vllm", "hf", *(["server"] if args.server else [])):
        try:
            figures = run_side("bench.rollout", ["--side", name, *[f"--{k}={getattr(args, k)}" for k in (
                "prompts", "group", "tokens", "rounds", "preset", "threads")]], name)
        except SideFailed as e:
            sys.exit(str(e))
        result["model_parameters"] = figures.pop("model_parameters")
        print(f"{name}: {figures}", flush=True)
        result[name] = figures
    result["speedup"] = round(result["vllm"]["tokens_per_s"] / result["hf"]["tokens_per_s"], 2)
    if args.server:
        result["server_vs_vllm"] = round(result["server"]["tokens_per_s"] / result["vllm"]["tokens_per_s"], 2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
