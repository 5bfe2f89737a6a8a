"""Models and datasets by hub id, through a real Hugging Face cache (tests/hub_cache.py) with no network: dotted ids
load for SFT, GRPO and evaluation, every shipped recipe's ids resolve, and each way of not finding one (local path,
offline cache miss, unreachable hub, no such repository, gated, no such revision) has its own message.

huggingface_hub reads HF_HOME, HF_HUB_OFFLINE and HF_ENDPOINT when it is imported, so every check runs in a fresh
process with those set, as a user's shell would. The "hub" that refuses (no such repository, gated, no such revision)
is a local HTTP server answering with the hub's own error headers; the real huggingface_hub client reads them."""

import json
import os
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from hub_cache import place_dataset, place_model

from grpo.data.suites import data_dir
from grpo.data.tasks import arithmetic

ROOT = Path(__file__).resolve().parents[1]
MODEL, DATASET = "acme/Tiny-R1-1.5B-Instruct", "acme/Tiny-Math-1.0"  # dotted ids, as most real ones are


def _env(home: Path, **extra) -> dict:
    return {**os.environ, "HF_HOME": str(home), "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT), **extra}


def _run(home: Path, *args: str, module: str = "grpo.train", timeout: int = 600, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT, env=_env(home, **env))


@pytest.fixture(scope="module")
def home(tmp_path_factory, base):
    """A Hugging Face cache holding the test model and an arithmetic dataset (train and test splits) by hub id."""
    home = tmp_path_factory.mktemp("hf_home")
    place_model(home, MODEL, base)
    rows = {split: arithmetic(n, split=part, seed=0, digits=1, ops=1)
            for split, part, n in (("train", "train", 40), ("test", "heldout", 8))}
    place_dataset(home, DATASET, rows)
    return home


def test_sft_and_grpo_train_from_dotted_hub_ids_offline(tmp_path, home):
    run_dir = tmp_path / "run"
    done = _run(home, f"run.dir={run_dir}", "run.stages=[sft,grpo]", f"model.path={MODEL}", "data.source=hub",
                f"data.path={DATASET}", "data.solution_field=solution", "heldout.source=hub", f"heldout.path={DATASET}",
                "heldout.split=test", "prompt.template=plain", "sft.steps=3", "sft.warmup_steps=1", "sft.eval_every=0",
                "sft.eval_size=4", "sft.max_new_tokens=8", "grpo.steps=2", "grpo.warmup_steps=0", "grpo.eval_every=0",
                "grpo.eval_size=4", "grpo.prompts_per_step=2", "grpo.group_size=2", "rollout.max_new_tokens=16")
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert set(summary["stages"]) == {"sft", "grpo"} and summary["stages"]["grpo"]["steps"] == 2
    assert "40 training records" in done.stdout and "8 held-out" in done.stdout  # the hub splits, read whole


def test_evaluation_loads_a_dotted_hub_id(tmp_path, home):
    if not (data_dir() / "gsm8k_test.jsonl").exists():
        pytest.skip(f"no suite data in {data_dir()}")
    done = _run(home, "--suite", "gsm8k", "--model", MODEL, "--output-dir", str(tmp_path / "out"), "--limit", "2",
                "--n", "1", "--max-new-tokens", "8", "--preset", "greedy", module="evals.run")
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((tmp_path / "out" / "gsm8k" / "results.json").read_text())["problems"] == 2


CASES = """
import json, sys
from grpo.hub import NotFound, model_dir, snapshot
out = {}
for name, revision in json.loads(sys.argv[1]):
    try:
        out[name + "@" + revision] = str(model_dir(name, revision, key="model.path"))
    except NotFound as e:
        out[name + "@" + revision] = "NotFound: " + str(e)
try:
    snapshot("acme/No-Data-2.0", repo_type="dataset", key="data.path")
except NotFound as e:
    out["dataset"] = "NotFound: " + str(e)
print(json.dumps(out))
"""


def _cases(home: Path, cases: list[tuple[str, str]], **env) -> dict:
    done = subprocess.run([sys.executable, "-c", CASES, json.dumps(cases)], capture_output=True, text=True,
                          timeout=300, cwd=ROOT, env=_env(home, **env))
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


def test_offline_and_local_failures_name_their_case(tmp_path, home):
    a_file = tmp_path / "weights.bin"
    a_file.write_bytes(b"x")
    got = _cases(home, [(MODEL, ""), ("acme/Missing-0.5B", ""), ("./no/such/dir", ""), ("runs/tiny/final", ""),
                        (str(a_file), "")])
    assert got[f"{MODEL}@"].startswith(str(home / "hub"))  # found in the cache, by its dotted id
    missing = got["acme/Missing-0.5B@"]
    assert "not in the Hugging Face cache" in missing and "HF_HUB_OFFLINE is set" in missing and str(home) in missing
    assert got["./no/such/dir@"] == "NotFound: model.path './no/such/dir': no such local directory"
    assert got["runs/tiny/final@"] == "NotFound: model.path 'runs/tiny/final': no such local directory"
    assert got[f"{a_file}@"].endswith("is a file, not a model directory")
    assert "data.path 'acme/No-Data-2.0': not in the Hugging Face cache" in got["dataset"]


class _Hub(BaseHTTPRequestHandler):
    """A hub that refuses: the repository named in the path decides the error, sent as the hub's X-Error-Code."""

    def do_GET(self):  # http.server's naming
        code, error = ((403, "GatedRepo") if "Gated" in self.path else (404, "RevisionNotFound")
                       if "/revision/v9" in self.path else (404, "RepoNotFound"))
        self.send_response(code)
        self.send_header("X-Error-Code", error)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(json.dumps({"error": error}).encode())

    do_HEAD = do_GET

    def log_message(self, *args):
        pass


def test_hub_refusals_name_their_case(home):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        got = _cases(home, [("acme/Nope-1.5B", ""), ("acme/Gated-7B", ""), ("acme/Versioned-1.0", "v9")],
                     HF_HUB_OFFLINE="0", HF_ENDPOINT=endpoint, HF_HUB_ETAG_TIMEOUT="5", HF_HUB_DOWNLOAD_TIMEOUT="5")
    finally:
        server.shutdown()
    assert "not found on the Hugging Face hub" in got["acme/Nope-1.5B@"] and "HF_TOKEN" in got["acme/Nope-1.5B@"]
    gated = got["acme/Gated-7B@"]
    assert "is gated on the Hugging Face hub" in gated and f"{endpoint}/acme/Gated-7B" in gated
    assert "model.path 'acme/Versioned-1.0' (revision 'v9'): the hub repository has no such revision" in \
        got["acme/Versioned-1.0@v9"]


def test_an_unreachable_hub_is_named(home):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{s.getsockname()[1]}"
    got = _cases(home, [("acme/Elsewhere-1.5B", "")], HF_HUB_OFFLINE="0", HF_ENDPOINT=endpoint,
                 HF_HUB_ETAG_TIMEOUT="5", HF_HUB_DOWNLOAD_TIMEOUT="5")
    assert "could not be reached and it is not in the cache" in got["acme/Elsewhere-1.5B@"]


def test_a_missing_model_stops_grpo_train_with_exit_code_2(tmp_path, home):
    done = _run(home, f"run.dir={tmp_path / 'run'}", "run.stages=[grpo]", "model.path=acme/Missing-0.5B")
    assert done.returncode == 2
    assert "error: model.path 'acme/Missing-0.5B': not in the Hugging Face cache" in done.stderr


RECIPES = ["qwen2.5-math-1.5b_grpo.yaml", "qwen2.5-math-1.5b_sft.yaml", "r1-distill-qwen-1.5b_grpo.yaml"]


def test_every_shipped_recipe_resolves_its_ids_from_the_cache(tmp_path, base):
    """The real-scale recipes' model and dataset ids, each written into a cache (the test model under the model ids,
    rows with the recipe's own field names under the dataset ids): `python -m grpo.fetch` finds every one offline."""
    from grpo.config import load_config

    home = tmp_path / "hf_home"
    for recipe in RECIPES:
        config = load_config(ROOT / "configs" / recipe)
        place_model(home, config.model.path, base)
        for section in (config.data, config.heldout):
            answer = {"plain": "2", "gsm8k": "so #### 2", "boxed": "so \\boxed{2}"}[section.answer_format]
            row = {section.prompt_field: "What is 1 + 1?", section.answer_field: answer}
            if section.solution_field:
                row[section.solution_field] = "<think>\n1 + 1 = 2\n</think>\n\\boxed{2}"
            place_dataset(home, section.path, {section.split: [row, row]})
    for recipe in RECIPES:
        done = _run(home, "--config", f"configs/{recipe}", module="grpo.fetch")
        assert done.returncode == 0, (recipe, done.stderr[-2000:])
        lines = done.stdout.splitlines()
        assert any(line.startswith("model.path ") and str(home) in line for line in lines), lines
        assert sum(line.endswith(": 2 rows") for line in lines) == 2, lines


def test_a_suite_without_local_files_loads_from_the_hub_and_names_the_way_out_when_it_cannot(tmp_path, home):
    """GSM8K in the layout of its hub repository (a `main` configuration, README configs) in the cache: evals.run
    reads it with no local file; MATH-500, in neither place, is refused with one message naming the dataset, the
    split and the override (exit 2, no traceback)."""
    from hub_cache import place

    rows = [{"question": "What is 2 + 3?", "answer": "2 + 3 = 5\n#### 5"}, {"question": "What is 9 - 4?",
                                                                           "answer": "#### 5"}]
    readme = "---\nconfigs:\n- config_name: main\n  data_files:\n  - split: test\n    path: main/test-*\n---\n"
    lines = "".join(json.dumps(r) + "\n" for r in rows).encode()
    place(home, "openai/gsm8k", {"README.md": readme.encode(), "main/test-00000-of-00001.jsonl": lines},
          repo_type="dataset")
    empty = tmp_path / "no_suites"
    empty.mkdir()
    completions = tmp_path / "c.jsonl"
    completions.write_text('{"id": "0", "completion": "\\\\boxed{5}"}\n{"id": "1", "completion": "\\\\boxed{4}"}\n')
    args = ["--data-dir", str(empty), "--completions", str(completions), "--output-dir", str(tmp_path / "o")]
    done = _run(home, "--suite", "gsm8k", *args, module="evals.run")
    assert done.returncode == 0, done.stderr
    results = json.loads((tmp_path / "o" / "gsm8k" / "results.json").read_text())
    assert results["problems"] == 2 and results["metrics"]["pass@1"] == 0.5
    done = _run(home, "--suite", "math500", *args, module="evals.run")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    for part in ("suite math500: no local file", "HuggingFaceH4/MATH-500, split test", "not in the Hugging Face cache",
                 "put math500.jsonl in a directory and pass --data-dir DIR (or GRPO_EVAL_DATA)"):
        assert part in done.stderr, done.stderr
