"""A Hugging Face cache written by hand, in the hub's own layout, for tests that load models and datasets by hub id
with no network: `HF_HOME/hub/<models|datasets>--ORG--NAME/{refs/main, blobs/<sha256>, snapshots/<commit>/...}`,
each snapshot file a relative symlink to its blob, as huggingface_hub leaves a download. With HF_HOME pointing at it
and HF_HUB_OFFLINE=1, transformers, datasets and huggingface_hub resolve the ids exactly as after a real download."""

import hashlib
import json
import os
from pathlib import Path


def place(home: Path, repo_id: str, files: dict[str, bytes], *, repo_type: str = "model",
          commit: str = "0123456789abcdef0123456789abcdef01234567") -> Path:
    """Write `files` (path in the repository -> content) as the repository `repo_id` at revision main; returns the
    snapshot directory."""
    repo = home / "hub" / f"{repo_type}s--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / commit
    for name, content in files.items():
        blob = repo / "blobs" / hashlib.sha256(content).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(content)
        link = snapshot / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.unlink(missing_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    return snapshot


def place_model(home: Path, repo_id: str, model_dir: Path) -> Path:
    """A saved model directory (weights, config, tokenizer) as the hub model `repo_id`."""
    return place(home, repo_id, {p.name: p.read_bytes() for p in model_dir.iterdir() if p.is_file()})


def place_dataset(home: Path, repo_id: str, splits: dict[str, list[dict]]) -> Path:
    """Rows per split as the hub dataset `repo_id` (data/<split>.jsonl, which `datasets` maps to its splits)."""
    files = {f"data/{split}.jsonl": "".join(json.dumps(row) + "\n" for row in rows).encode()
             for split, rows in splits.items()}
    return place(home, repo_id, files, repo_type="dataset")
