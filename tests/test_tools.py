"""Tool-integrated rollouts (grpo/rollout/tools.py), run for real: the sandbox is the interpreter and the engines are
the transformers one and vLLM on CPU.

A scripted model: a tiny model trained here until, greedy, it writes exactly the transcripts below (it memorises
what it writes around the tool's output; the output itself comes from the sandbox each time). With it, a two-call
trajectory's tokens, loss mask and logprobs are known by hand."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from crashes import logged, weights
from engines import ENGINES
from test_sandbox_attacks import stray_processes

from grpo import train
from grpo.config import ConfigError, RewardConfig, RolloutConfig
from grpo.config.load import load_config
from grpo.data.prompts import Example
from grpo.learner.logprobs import token_logprobs
from grpo.learner.update import Sample, _micro_batch, step_size
from grpo.model import build_model, build_tokenizer
from grpo.rollout import HFEngine, SamplingParams, make_engine
from grpo.rollout.tools import ToolEngine, ToolSettings, cell_program, code_block, result_body, run_block, segments
from grpo.runs.checkpoint import latest_checkpoint
from grpo.stages.grpo import CHECKPOINTS
from grpo.stages.judge import Judge, score
from grpo.stages.rollouts import tool_metrics
from grpo.stages.sft import IGNORE, tokenize
from sandbox import default_sandbox

SETTINGS = ToolSettings()
# prompt -> (what the model writes, with the interpreter's results in their places)
SCRIPTS = {
    "Q2:": "<python>x = 41</python><output></output><python>x + 1</python><output>42</output>so \\boxed{42}",
    "Q7:": ("<python>print(chr(92) + 'boxed{' + str(3 + 4) + '}')</python><output>\\boxed{7}</output>"
            "no answer"),
    "Q0:": "<python>1/0</python><output>  File \"<cell 1>\", line 1, in <module>\n    1/0\n     ~^~\n"
           "ZeroDivisionError: division by zero</output>\\boxed{0}",
}


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer()


@pytest.fixture(scope="module")
def scripted(tokenizer):
    """A tiny model that writes SCRIPTS greedily (checked: the tests below rely on it)."""
    model = build_model("tiny", tokenizer, seed=0)
    rows = [tokenizer(p + s, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
            for p, s in SCRIPTS.items()]
    width = max(map(len, rows))
    ids = torch.tensor([r + [tokenizer.pad_token_id] * (width - len(r)) for r in rows])
    labels = torch.tensor([r + [-100] * (width - len(r)) for r in rows])
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    torch.manual_seed(0)
    for _ in range(400):
        loss = model(input_ids=ids, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if loss.item() < 1e-3:
            break
    model.eval()
    engine = ToolEngine(HFEngine(model, tokenizer), tokenizer, SETTINGS)
    greedy = SamplingParams(temperature=0.0, max_new_tokens=160)
    for group, want in zip(engine.generate(list(SCRIPTS), 1, greedy, seed=0), SCRIPTS.values()):
        assert group.completions[0].transcript == want, "the scripted model did not learn its transcript"
    return model


def hand_mask(transcript: str, tokenizer) -> list[int]:
    """1 on the model's characters, 0 on the result blocks (markers included): one token per character here."""
    return [m for is_tool, piece in segments(transcript, SETTINGS)
            for m in [0 if is_tool else 1] * len(tokenizer(piece, add_special_tokens=False)["input_ids"])]


@ENGINES
def test_a_two_call_trajectory_by_hand(engine, scripted, tokenizer):
    """Tokens, loss mask and logprobs of "x = 41" then "x + 1" (the name survives to the second block): every model
    token in the loss with its logprob under the model, every tool token out of it with logprob 0; the end-of-turn
    token the model's."""
    tools = make_engine(RolloutConfig(engine=engine, tools="python", max_new_tokens=160), scripted, tokenizer)
    try:
        group = tools.generate(["Q2:"], 1, SamplingParams(temperature=0.0, max_new_tokens=160), seed=0)[0]
    finally:
        tools.close()
    c = group.completions[0]
    transcript = SCRIPTS["Q2:"]
    assert c.transcript == transcript and c.finish_reason == "stop"
    assert c.text == "<python>x = 41</python><python>x + 1</python>so \\boxed{42}"  # the model's own text
    assert c.token_ids == tokenizer(transcript, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    assert c.mask == hand_mask(transcript, tokenizer) + [1]
    assert [t["role"] for t in c.turns] == ["model", "tool", "model", "tool", "model"]
    assert [t["status"] for t in c.turns if t["role"] == "tool"] == ["ok", "ok"]
    # greedy: the engine's logprobs are the model's own (raw distribution) on model tokens, 0 on tool tokens
    seq = torch.tensor([group.prompt_ids + c.token_ids])
    learner, _ = token_logprobs(scripted, seq, torch.ones_like(seq), 1.0)
    learner = learner[0, len(group.prompt_ids) - 1 :]
    on = torch.tensor(c.mask, dtype=torch.bool)
    engine_lp = torch.tensor(c.logprobs)
    assert torch.allclose(engine_lp[on], learner[on], atol=1e-4, rtol=0)
    assert torch.all(engine_lp[~on] == 0)
    # the learner's layout: the loss mask is the completion's mask, shifted under the prompt; the step counts only
    # the model's tokens
    sample = Sample(group.prompt_ids, c.token_ids, c.logprobs, 1.0, True, c.mask)
    mb = _micro_batch([sample], tokenizer.pad_token_id, "cpu")
    p = len(group.prompt_ids)
    assert mb.mask[0, p - 1 :].tolist() == [float(m) for m in c.mask]
    assert mb.mask[0, : p - 1].sum() == 0
    assert step_size([sample], 160).tokens == sum(c.mask) == len(c.token_ids) - len("<output></output>") - len(
        "<output>42</output>")


@ENGINES
def test_after_a_sync_engine_logprobs_equal_the_learners_across_turns(engine, scripted, tokenizer):
    """The drift test: a learner with other weights, synced into the engine; sampled multi-turn completions carry,
    on every model token of every turn, the learner's logprob of that token given exactly the ids before it."""
    learner = build_model("tiny", tokenizer, seed=0)
    learner.load_state_dict(scripted.state_dict())
    with torch.no_grad():
        for p in learner.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    tools = make_engine(RolloutConfig(engine=engine, tools="python", max_new_tokens=160),
                        build_model("tiny", tokenizer, seed=3), tokenizer)
    try:
        tools.load_weights(learner.state_dict().items())
        sampling = SamplingParams(temperature=1.0, max_new_tokens=160)
        groups = tools.generate(list(SCRIPTS), 4, sampling, seed=11)
    finally:
        tools.close()
    calls = 0
    for group in groups:
        for c in group.completions:
            mask = torch.tensor(c.mask if c.mask is not None else [1] * len(c.token_ids), dtype=torch.bool)
            calls += int((~mask).any())
            seq = torch.tensor([group.prompt_ids + c.token_ids])
            learner_lp, _ = token_logprobs(learner, seq, torch.ones_like(seq), sampling.temperature)
            learner_lp = learner_lp[0, len(group.prompt_ids) - 1 :]
            assert torch.allclose(torch.tensor(c.logprobs)[mask], learner_lp[mask], atol=2e-4, rtol=0)
    assert calls >= 6  # the comparison crossed tool turns


@ENGINES
def test_greedy_multi_turn_output_is_the_same_on_both_engines(engine, scripted, tokenizer):
    greedy = SamplingParams(temperature=0.0, max_new_tokens=160)
    prompts = [*SCRIPTS, "Q9:", "Q27:"]
    out = {}
    for name in ("hf", engine):
        tools = make_engine(RolloutConfig(engine=name, tools="python", max_new_tokens=160), scripted, tokenizer)
        try:
            out[name] = [(c.token_ids, c.mask, c.finish_reason) for g in tools.generate(prompts, 1, greedy, seed=0)
                         for c in g.completions]
        finally:
            tools.close()
    assert out["hf"] == out[engine]


def test_server_mode_runs_the_tool_loop_like_the_transformers_engine(scripted, tokenizer, tmp_path):
    """rollout.engine: server with tools: the same greedy transcripts as the transformers engine, and logprobs of the
    model's tokens equal to the learner's (the server samples from the weights the trainer synced)."""
    from grpo.rollout import vllm_engine
    from grpo.rollout.server import spawn

    if not vllm_engine.available():
        pytest.skip(f"vllm does not import here: {vllm_engine.IMPORT_ERROR!r}")
    scripted.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    process, url = spawn(tmp_path / "model", "--cpu-kv-cache-gib", "0.25")
    greedy = SamplingParams(temperature=0.0, max_new_tokens=160)
    try:
        tools = make_engine(RolloutConfig(engine="server", server_url=url, tools="python"), scripted, tokenizer)
        try:
            served = tools.generate(list(SCRIPTS), 1, greedy, seed=0)
        finally:
            tools.close()
    finally:
        process.terminate()
        process.wait(timeout=60)
    local = ToolEngine(HFEngine(scripted, tokenizer), tokenizer, SETTINGS).generate(list(SCRIPTS), 1, greedy, seed=0)
    for a, b in zip(served, local):
        c, d = a.completions[0], b.completions[0]
        assert (c.token_ids, c.mask, c.transcript) == (d.token_ids, d.mask, d.transcript)
        on = torch.tensor(c.mask, dtype=torch.bool)
        assert torch.allclose(torch.tensor(c.logprobs)[on], torch.tensor(d.logprobs)[on], atol=2e-4, rtol=0)


def test_the_tools_boxed_answer_is_not_rewarded(scripted, tokenizer):
    """The interpreter printed \\boxed{7} (the right answer), the model wrote none: reward 0. The same words
    written by the model are rewarded, so the verifier does read this text."""
    tools = ToolEngine(HFEngine(scripted, tokenizer), tokenizer, SETTINGS)
    groups = tools.generate(["Q7:"], 1, SamplingParams(temperature=0.0, max_new_tokens=160), seed=0)
    c = groups[0].completions[0]
    assert "\\boxed{7}" in c.transcript and "boxed{7}" not in c.text
    example = Example("Q7:", "7", None)
    rewards = score(groups, [example], Judge(), RewardConfig(), max_new_tokens=160)
    assert rewards[0][0]["reward"] == 0.0 and not rewards[0][0]["correct"]
    assert Judge()([c.transcript], [example])[0].correct  # the whole transcript would have passed


def test_an_error_comes_back_as_its_traceback_and_the_rollout_goes_on(scripted, tokenizer):
    tools = ToolEngine(HFEngine(scripted, tokenizer), tokenizer, SETTINGS)
    c = tools.generate(["Q0:"], 1, SamplingParams(temperature=0.0, max_new_tokens=160), seed=0)[0].completions[0]
    assert c.turns[1]["status"] == "error" and c.turns[1]["text"].endswith(
        "ZeroDivisionError: division by zero</output>")
    assert c.finish_reason == "stop" and c.turns[-1]["text"] == "\\boxed{0}"


def test_the_budget_counts_tool_tokens_and_cuts_a_result(scripted, tokenizer):
    """A budget that ends inside the second result: the result is cut there and the completion is truncated."""
    tools = ToolEngine(HFEngine(scripted, tokenizer), tokenizer, SETTINGS)
    budget = len("<python>x = 41</python><output></output><python>x + 1</python><output>4")
    c = tools.generate(["Q2:"], 1, SamplingParams(temperature=0.0, max_new_tokens=budget), seed=0)[0].completions[0]
    assert len(c.token_ids) == budget and c.finish_reason == "length"
    assert c.transcript == SCRIPTS["Q2:"][:budget]
    assert c.mask[-len("<output>4"):] == [0] * len("<output>4")


def test_the_call_limit_refuses_later_blocks(scripted, tokenizer):
    tools = ToolEngine(HFEngine(scripted, tokenizer), tokenizer, ToolSettings(max_calls=1))
    c = tools.generate(["Q2:"], 1, SamplingParams(temperature=0.0, max_new_tokens=200), seed=0)[0].completions[0]
    statuses = [t["status"] for t in c.turns if t["role"] == "tool"]
    assert statuses == ["ok", "limit"]
    assert "runs at most 1 blocks per answer" in c.turns[3]["text"]


# -- the interpreter: one call at a time, in the real sandbox ----------------------------------------------------


def call(cells: list[str], **settings):
    return run_block(default_sandbox(), cells, ToolSettings(**settings))


def test_blocks_share_names_and_show_the_last_expression():
    assert call(["x = 41", "def f(y):\n    return y * 2", "f(x) + 1"])[:2] == ("83", "ok")
    assert call(["x = [1, 2]", "x.append(3)"])[:2] == ("", "ok")  # None is not shown
    assert call(["print('a')", "print('b')\n'c'"])[:2] == ("b\n'c'", "ok")  # earlier output is not repeated
    assert call(["y = 1/0", "y"])[0].endswith("NameError: name 'y' is not defined")  # an error keeps nothing


@pytest.mark.parametrize("code, status, ends", [
    ("while True:\n    pass", "timeout", "TimeoutError: the call ran past its 1 s deadline"),
    ("import time\ntime.sleep(30)", "timeout", "TimeoutError: the call ran past its 1 s deadline"),
    ("print('x' * 10**8)", "output_limit", "more characters]"),
    ("import os\nwhile True:\n    os.fork()", None, None),
    ("open('/etc/shadow').read()", "error", "No such file or directory: '/etc/shadow'"),
    ("open('/root/.bashrc').read()", "error", "No such file or directory: '/root/.bashrc'"),
    ("import socket\nsocket.create_connection(('1.1.1.1', 80), timeout=1)", "error", "Network is unreachable"),
    ("import ctypes\nctypes.string_at(0)", "killed", "Segmentation fault: the call crashed (a C stack overflow?)"),
    ("x = [0] * 10**10", "error", "MemoryError"),
])
def test_an_attack_through_the_tool_ends_with_an_error_text_and_no_stray_process(code, status, ends):
    body, got, seconds = call([code], timeout_s=1.0)
    assert got != "ok" and body
    if status is not None:
        assert got == status and body.endswith(ends), body
    assert seconds < 1.0 + 3.0
    deadline = time.monotonic() + 2.0
    while stray_processes() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not stray_processes()


def test_a_c_stack_overflow_is_an_error_at_once_not_a_timeout():
    """10^6 nested lists repr'd under a raised recursion limit: a RecursionError well before the 2 s deadline (the
    limit a program may raise is capped); without the cap the repr crawls into the deadline."""
    deep = "import sys\nsys.setrecursionlimit(10**7)\nx = []\nfor _ in range(10**6):\n    x = [x]\nrepr(x)"
    body, status, seconds = call([deep])
    assert status == "error" and body.endswith("RecursionError: maximum recursion depth exceeded while getting the "
                                               "repr of an object")
    assert seconds < 1.5


def test_replay_skips_a_block_that_ran_past_its_limit(scripted, tokenizer):
    """Only blocks that ran to an end (ok or an error) are replayed: a timed-out one would time out again."""
    from grpo.rollout.tools import _Trajectory

    engine = ToolEngine(HFEngine(scripted, tokenizer), tokenizer, ToolSettings(timeout_s=1.0))
    t = _Trajectory([])
    first = engine._run([(t, "import time\ntime.sleep(5)")])[0]
    second = engine._run([(t, "1 + 1")])[0]
    assert first[1] == "timeout" and second[:2] == ("2", "ok") and second[2] < 1.0
    assert t.calls == 2 and t.cells == ["1 + 1"]


# -- pure parts --------------------------------------------------------------------------------------------------


def test_code_block_and_segments():
    assert code_block("think <python>a = 1\nprint(a)</python>", SETTINGS) == "a = 1\nprint(a)"
    assert code_block("stray </python>", SETTINGS) is None
    # a stray close earlier in the segment (generation went on after it) is passed over
    assert code_block("x </python> y <python>new</python>", SETTINGS) == "new"
    assert segments("a<output>1</output>b<output>2", SETTINGS) == [
        (False, "a"), (True, "<output>1</output>"), (False, "b"), (True, "<output>2")]


def test_result_body_by_hand():
    s = ToolSettings(output_chars=10, error_lines=2, timeout_s=2.0, memory_mb=64)
    assert result_body("ok", 0, "12345\n", "", s) == "12345"
    assert result_body("ok", 0, "x" * 25, "", s) == "x" * 10 + "\n...[15 more characters]"
    assert result_body("error", 1, "", "Traceback\n  File x\n    1/0\nZeroDivisionError: z\n",
                       ToolSettings(error_lines=2)) == "    1/0\nZeroDivisionError: z"
    assert result_body("timeout", None, "", "", ToolSettings()) == "TimeoutError: the call ran past its 2 s deadline"
    assert result_body("killed", -9, "", "", ToolSettings()) == "the call was killed (signal 9)"
    assert "import" in cell_program(["a"]) and "'a'" in cell_program(["a"])


def test_tool_metrics_by_hand():
    from grpo.rollout.types import Completion

    def completion(*statuses):
        turns = [{"role": "model", "text": ""}] + [{"role": "tool", "text": "", "status": s} for s in statuses]
        return Completion([], "", [], "stop", turns=turns if statuses else None)

    metrics = tool_metrics([completion("ok", "error"), completion("timeout"), completion()], 1.5)
    assert metrics == {"tools/calls_mean": 1.0, "tools/error_frac": 2 / 3, "tools/timeout_frac": 1 / 3,
                       "perf/tool_s": 1.5}


def test_sft_masks_the_interpreters_output(tokenizer):
    example = Example("Q:", "1", "<python>1</python><output>1</output>\\boxed{1}")
    (_, labels), = tokenize([example], tokenizer, 200, SETTINGS)[0]
    masked = [i for i, label in enumerate(labels) if label == IGNORE]
    start = len("Q:") + len("<python>1</python>")
    assert masked == list(range(len("Q:"))) + list(range(start, start + len("<output>1</output>")))
    assert tokenize([example], tokenizer, 200)[0][0][1][start] != IGNORE  # without tools: all trained on


@pytest.mark.parametrize("override, key", [
    ("rollout.tools=bash", "rollout.tools"),
    ("rollout.tool_close=<python>", "rollout.tool_close"),
    ("rollout.tool_open= ", "rollout.tool_open"),
    ("rollout.max_tool_calls=-1", "rollout.max_tool_calls"),
    ("rollout.tool_timeout_s=0", "rollout.tool_timeout_s"),
    ("task.tool_solutions=0.5", "task.tool_solutions"),  # the arithmetic task writes no tool calls
])
def test_bad_tool_settings_are_refused_by_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(None, [override])


def test_products_solutions_use_the_configured_markers_only():
    with pytest.raises(ConfigError, match="task.tool_solutions"):
        load_config(None, ["data.source=products", "task.tool_solutions=0.5", "rollout.tool_open=```python"])
    load_config(None, ["data.source=products", "task.tool_solutions=0.5", "rollout.tools=python"])


# -- whole runs --------------------------------------------------------------------------------------------------

RECIPE = str(Path(__file__).parents[1] / "configs" / "tiny_tools.yaml")
SMALL = ["rollout.engine=hf", "task.train_size=2000", "task.heldout_size=8", "grpo.eval_size=8", "sft.eval_size=8"]


@pytest.fixture(scope="module")
def tool_base(tmp_path_factory):
    """A short cold start on worked solutions that all call the interpreter: the model calls it, greedy too."""
    run_dir = tmp_path_factory.mktemp("tools_sft")
    assert train.main(["--config", RECIPE, f"run.dir={run_dir}", "run.stages=[sft]", "task.tool_solutions=1.0",
                       "sft.steps=200", "sft.eval_every=0", *SMALL]) == 0
    return run_dir / "final"


def test_evals_run_with_tools_grades_the_models_own_text(tool_base, tmp_path):
    path = os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path}
    out = tmp_path / "evals"
    done = subprocess.run([sys.executable, "-m", "evals.run", "--suite", "plugin_examples:products", "--model",
                           str(tool_base), "--template", "plain", "--preset", "greedy", "--think-prefix",
                           "--max-new-tokens", "96", "--engine", "hf", "--tools", "python", "--output-dir", str(out)],
                          check=False, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    samples = [json.loads(line) for line in (out / "plugin_examples_products" / "samples.jsonl").read_text().splitlines()]
    called = [s for s in samples if s.get("turns")]
    assert len(called) >= len(samples) // 2  # the cold start calls the interpreter
    for s in called:
        assert "<output>" in s["transcript"] and "<output>" not in s["completion"]  # graded on the model's text
    results = json.loads((out / "plugin_examples_products" / "results.json").read_text())
    assert results["params"]["tools"] == "python"


def test_a_tools_run_survives_sigkill_mid_step_and_resumes_exactly(tool_base, tmp_path):
    args = ["--config", RECIPE, f"model.path={tool_base}", "run.stages=[grpo]", *SMALL, "grpo.steps=5",
            "grpo.warmup_steps=0", "grpo.eval_every=0", "grpo.save_every=1", "grpo.keep_checkpoints=2",
            "grpo.prompts_per_step=4", "grpo.group_size=4"]
    straight = tmp_path / "straight"
    assert train.main([*args, f"run.dir={straight}"]) == 0
    steps = [r for r in logged(straight) if "tools/calls_mean" in r]
    assert len(steps) == 5 and min(r["tools/calls_mean"] for r in steps) > 0.5  # the interpreter ran every step

    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "grpo.train", *args, f"run.dir={killed}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    root = killed / CHECKPOINTS
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        done = latest_checkpoint(root) if root.exists() else None
        if done is not None and done.name == "step_2":
            time.sleep(0.5)  # inside step 3: its rollouts (and their tool calls) under way
            break
        time.sleep(0.002)
    assert proc.poll() is None, f"the run ended before it could be killed: {proc.stderr.read()[-2000:]}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert train.main(["--resume", str(killed)]) == 0
    assert logged(straight) == logged(killed)
    a, b = weights(straight / "final"), weights(killed / "final")
    assert all(torch.equal(a[k], b[k]) for k in a)
