"""Tool-integrated rollouts: the sandbox as the model's Python interpreter, on any rollout engine.

`ToolEngine(engine, tokenizer, settings)` follows the rollout protocol (grpo/rollout/types.py) and drives the
engine's `sample_rows` in rounds (`rollout.tools: python`):

1. generate  every unfinished trajectory goes on from its own token ids until it ends its turn, runs out of its
             budget, or closes a code block (`settings.close`, after `settings.open`): it then pauses
2. run       the paused trajectories' blocks run in the sandbox, all at once (`workers` at a time); each call
             has its own deadline and memory cap; a call that fails, times out or crashes returns its error text
3. append    each result, `result_open + output + result_close` (stdout, or the error's last lines; at most
             `output_chars` characters, then a marker), is tokenised once and appended with loss mask 0;
             trajectories that finished leave the rounds, the others go back to 1
until none is left. Past `max_calls` a block does not run: its result says so.

Token in, token out: the model's sampled ids and their sampling logprobs are kept exactly as sampled and nothing is
re-rendered between turns, so the learner scores the very ids the engine sampled (tests/test_tools.py: the drift
test). `rollout.max_new_tokens` counts the model's and the tool's tokens alike: a result that does not fit is cut
at the budget and the completion is truncated ("length"). `Completion.text` is the model's own text only (the
verifier never reads the tool's output: a `\\boxed{}` the program printed does not count); `turns` holds the
interleaved transcript.

Interpreter semantics: the blocks of one trajectory share their names, by replay: a call runs the trajectory's
earlier blocks again (their output discarded, their errors ignored) before the new one, in one fresh sandbox
process. The cost: block k runs k blocks' work, so a trajectory of k calls runs k(k+1)/2 blocks (k is at most
`max_calls`); and whatever an earlier block drew at random is drawn again, not remembered. Like a notebook cell,
the value of a block's last expression is printed. The recursion limit is capped at `max_recursion` (a program
may lower it, not raise it past that), so a deep C-level recursion (a deeply nested `repr`) stops at once with a
RecursionError instead of crawling until the deadline; a segfault (a C stack overflow) returns an error text.
Every call has the sandbox's guarantees (sandbox/__init__.py): no network, no host files, nothing survives it.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from grpo.rollout.types import Completion, EngineUnavailable, Group, SamplingParams

CELL_RUNNER = '''\
import ast as _ast, contextlib as _contextlib, io as _io, linecache as _linecache, sys as _sys, traceback as _tb
_raise_limit = _sys.setrecursionlimit
_sys.setrecursionlimit = lambda limit: _raise_limit(min(int(limit), {max_recursion}))
_cells = {cells!r}
_names = {{"__name__": "__main__", "__builtins__": __builtins__}}


def _run(source, name, show):
    _linecache.cache[name] = (len(source), None, source.splitlines(True), name)
    tree = compile(source, name, "exec", _ast.PyCF_ONLY_AST)
    last = tree.body.pop() if show and tree.body and isinstance(tree.body[-1], _ast.Expr) else None
    exec(compile(tree, name, "exec"), _names)
    if last is not None:
        value = eval(compile(_ast.Expression(last.value), name, "eval"), _names)
        if value is not None:
            print(repr(value))


for _i, _source in enumerate(_cells[:-1]):
    with _contextlib.redirect_stdout(_io.StringIO()), _contextlib.redirect_stderr(_io.StringIO()):
        try:
            _run(_source, "<cell %d>" % (_i + 1), False)
        except BaseException:
            pass
try:
    _run(_cells[-1], "<cell %d>" % len(_cells), True)
except Exception as _e:
    _trace = _e.__traceback__
    while _trace is not None and not _trace.tb_frame.f_code.co_filename.startswith("<cell"):
        _trace = _trace.tb_next
    _sys.stdout.flush()
    _tb.print_exception(type(_e), _e, _trace)
    _sys.exit(1)
'''


@dataclass(frozen=True)
class ToolSettings:
    """The interpreter a trajectory calls (rollout.tool_* in the config)."""

    open: str = "<python>"  # a code block starts after this
    close: str = "</python>"  # and ends here: generation pauses and the block runs
    result_open: str = "<output>"  # the result block appended after it
    result_close: str = "</output>"
    max_calls: int = 4  # blocks run per completion; later ones get a refusal as their result
    output_chars: int = 512  # result text kept; the rest is cut, with a marker
    timeout_s: float = 2.0  # per call (the replay of earlier blocks included)
    memory_mb: int = 512  # address space of the call's process
    error_lines: int = 4  # an error's result: the last lines of its traceback
    max_recursion: int = 10_000  # the recursion limit a program may raise up to
    workers: int = 2  # sandbox calls at a time

    @classmethod
    def of(cls, rollout) -> ToolSettings | None:
        """The run's settings (`rollout` a RolloutConfig), None when `rollout.tools` is off."""
        if rollout.tools in ("", "none"):
            return None
        return cls(rollout.tool_open, rollout.tool_close, rollout.tool_result_open, rollout.tool_result_close,
                   rollout.max_tool_calls, rollout.tool_output_chars, rollout.tool_timeout_s, rollout.tool_memory_mb,
                   workers=rollout.tool_workers)


def check_tools(rollout) -> None:
    """Refuse, before anything trains, `rollout.tools: python` where the sandbox cannot start."""
    if ToolSettings.of(rollout) is not None:
        _sandbox()


def _sandbox():
    """The process-wide bubblewrap sandbox (started only when tools are on), or EngineUnavailable saying why not."""
    from sandbox import SandboxUnavailable, default_sandbox

    try:
        return default_sandbox()
    except SandboxUnavailable as e:
        raise EngineUnavailable(f"rollout.tools: python runs the model's code in the sandbox, which cannot start "
                                f"here: {e}") from e


def cell_program(cells: list[str], max_recursion: int = 10_000) -> str:
    """The Python program that runs `cells[-1]` after replaying the earlier cells in the same namespace."""
    return CELL_RUNNER.format(cells=list(cells), max_recursion=int(max_recursion))


def code_block(text: str, settings: ToolSettings) -> str | None:
    """The code of the block that `text` (a segment that just stopped at `settings.close`) closes: between the last
    `open` before the last `close` and that `close` (a stray close earlier in the segment is passed over); None when
    no block was opened."""
    end = text.rfind(settings.close)
    if end < 0:
        return None
    start = text.rfind(settings.open, 0, end)
    if start < 0:
        return None
    return text[start + len(settings.open) : end]


def segments(text: str, settings: ToolSettings) -> list[tuple[bool, str]]:
    """`text` (a worked solution) cut into (is_tool_output, piece) in order: the result blocks, markers included,
    are the tool's; the rest the model's. What SFT masks out of its loss, as the learner does in rollouts."""
    out, at = [], 0
    while (start := text.find(settings.result_open, at)) >= 0:
        end = text.find(settings.result_close, start + len(settings.result_open))
        end = len(text) if end < 0 else end + len(settings.result_close)
        if start > at:
            out.append((False, text[at:start]))
        out.append((True, text[start:end]))
        at = end
    if at < len(text):
        out.append((False, text[at:]))
    return out


def result_body(status: str, returncode: int | None, stdout: str, stderr: str, settings: ToolSettings) -> str:
    """What the model reads back from one call: its output, or the error's last lines, or why it was stopped;
    at most `output_chars` characters (then a marker that says how many were cut)."""
    if status == "ok":
        body = stdout
    elif status == "timeout":
        body = stdout + f"TimeoutError: the call ran past its {settings.timeout_s:g} s deadline"
    elif status == "memory":
        body = stdout + f"MemoryError: the call ran past its {settings.memory_mb} MB memory cap"
    elif status == "output_limit":
        body = stdout
    elif status == "killed":
        signal = -returncode if returncode is not None and returncode < 0 else None
        why = ("Segmentation fault: the call crashed (a C stack overflow?)" if signal == 11 else
               f"the call was killed (signal {signal})" if signal else "the call was killed")
        body = stdout + why
    else:  # error (and compile errors): the traceback's tail
        lines = [line for line in stderr.rstrip("\n").splitlines() if line.strip()]
        body = stdout + "\n".join(lines[-settings.error_lines :])
    body = body.rstrip("\n")
    if len(body) > settings.output_chars:
        cut = len(body) - settings.output_chars
        body = body[: settings.output_chars] + f"\n...[{cut} more characters]"
    return body


def run_block(sandbox, cells: list[str], settings: ToolSettings) -> tuple[str, str, float]:
    """Run `cells[-1]` after replaying the earlier cells, in one sandbox process with the call's deadline and
    memory cap: (result body, status, seconds). Status: the sandbox's (ok, error, timeout, memory, output_limit,
    killed), or infra when the sandbox itself failed (the model is told; it is not the program's doing)."""
    from sandbox import Limits, SandboxError

    try:
        result = sandbox.run_job({"mode": "script", "code": cell_program(cells, settings.max_recursion),
                                  "tests": [{"stdin": ""}]}, timeout_s=settings.timeout_s,
                                 limits=Limits(memory_mb=settings.memory_mb, stack_mb=16))
    except SandboxError as e:  # retried already
        return f"the interpreter failed: {e}"[: settings.output_chars], "infra", 0.0
    record = result.records[0]
    status = "error" if record.status in ("compile_error", "not_run") else record.status
    body = result_body(status, record.returncode, record.stdout.decode("utf-8", errors="replace"),
                       record.stderr.decode("utf-8", errors="replace"), settings)
    return body, status, result.seconds


@dataclass
class _Trajectory:
    prompt_ids: list[int]
    ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    mask: list[int] = field(default_factory=list)
    turns: list[dict] = field(default_factory=list)
    cells: list[str] = field(default_factory=list)  # blocks that ran to an end (replayed before the next one)
    calls: int = 0  # blocks run
    segment: int = 0  # where the current model segment starts in `ids`
    finish: str = ""

    def add(self, ids: list[int], logprobs: list[float], mask: int, turn: dict) -> None:
        self.ids += ids
        self.logprobs += logprobs
        self.mask += [mask] * len(ids)
        if turn["role"] == "model" and self.turns and self.turns[-1]["role"] == "model":
            self.turns[-1]["text"] += turn["text"]  # a segment that went on over several rounds
        else:
            self.turns.append(turn)


class ToolEngine:
    """`engine` with the sandbox as the model's interpreter (module docstring). Weight syncs and everything else
    go to `engine`; `sandbox`: default, the process-wide bubblewrap sandbox (sandbox/__init__.py)."""

    def __init__(self, engine, tokenizer, settings: ToolSettings, *, sandbox=None):
        self.engine, self.tokenizer, self.settings = engine, tokenizer, settings
        self.sandbox = sandbox or _sandbox()
        self.tool_seconds = 0.0  # wall seconds spent waiting on calls, all rollouts together

    def __getattr__(self, name):  # the wrapped engine's own attributes (version, session, ...)
        if name == "engine":  # not set yet (a copy being built): no recursion
            raise AttributeError(name)
        return getattr(self.engine, name)

    def load_weights(self, named_tensors) -> None:
        self.engine.load_weights(named_tensors)

    def close(self) -> None:
        self.engine.close()

    def generate(self, prompts: list[str], n: int, sampling: SamplingParams, *, seed: int) -> list[Group]:
        groups = [Group(p, self.tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts]
        trajectories = [_Trajectory(g.prompt_ids) for g in groups for _ in range(n)]
        budget, waited = sampling.max_new_tokens, 0.0
        active = list(trajectories)
        for round_ in range(budget + 1):  # every round adds at least one token to each trajectory left
            if not active:
                break
            out = self.engine.sample_rows([t.prompt_ids + t.ids for t in active], sampling,  # 1. generate
                                          seed=(seed * 1_000_033 + round_ * 7_919) & 0x7FFFFFFF,
                                          stop=(self.settings.close,), max_new=[budget - len(t.ids) for t in active])
            calls: list[tuple[_Trajectory, str | None]] = []
            for t, c in zip(active, out):
                t.add(c.token_ids, c.logprobs, 1, {"role": "model", "text": c.text})
                if c.finish_reason == "call":
                    code = code_block(self.tokenizer.decode(t.ids[t.segment :], skip_special_tokens=True),
                                      self.settings)
                    if len(t.ids) >= budget:  # closed with the budget's last token: no room for a result
                        t.finish = "length"
                    elif code is not None:
                        calls.append((t, code))
                elif c.finish_reason == "stop":
                    t.finish = "stop"
                else:
                    t.finish = "length" if len(t.ids) >= budget else ""
            started = time.monotonic()
            results = self._run([(t, code) for t, code in calls])                           # 2. run
            waited += time.monotonic() - started
            for (t, _), (body, status, seconds) in zip(calls, results):                     # 3. append
                text = self.settings.result_open + body + self.settings.result_close
                ids = self.tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"]
                room = budget - len(t.ids)
                t.add(ids[:room], [0.0] * min(len(ids), room), 0,
                      {"role": "tool", "text": self.tokenizer.decode(ids[:room], skip_special_tokens=True),
                       "status": status, "seconds": round(seconds, 4)})
                t.segment = len(t.ids)
                if len(t.ids) >= budget:
                    t.finish = "length"
            active = [t for t in active if not t.finish]
        self.tool_seconds += waited
        for i, g in enumerate(groups):
            g.completions = [self._completion(t) for t in trajectories[i * n : (i + 1) * n]]
            g.tool_seconds = waited / len(groups)
        return groups

    def _run(self, calls: list[tuple[_Trajectory, str]]) -> list[tuple[str, str, float]]:
        """(result body, status, seconds) per call, in order; a call past its trajectory's limit does not run."""

        def one(call: tuple[_Trajectory, str]) -> tuple[str, str, float]:
            t, code = call
            if t.calls >= self.settings.max_calls:
                limit = self.settings.max_calls
                return f"the interpreter runs at most {limit} blocks per answer; this one did not run", "limit", 0.0
            t.calls += 1
            body, status, seconds = run_block(self.sandbox, t.cells + [code], self.settings)
            if status in ("ok", "error"):  # one that ran past a limit would do so again: not replayed
                t.cells.append(code)
            return body, status, seconds

        if not calls:
            return []
        with ThreadPoolExecutor(min(self.settings.workers, len(calls))) as pool:
            return list(pool.map(one, calls))

    def _completion(self, t: _Trajectory) -> Completion:
        text = "".join(turn["text"] for turn in t.turns if turn["role"] == "model")
        calls = any(turn["role"] == "tool" for turn in t.turns)
        return Completion(t.ids, text, t.logprobs, t.finish or "length", mask=t.mask if calls else None,
                          turns=t.turns if calls else None)
