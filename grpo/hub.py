"""Where a model or dataset that a config names lives: a local directory, or a Hugging Face hub id resolved by
huggingface_hub (its cache under HF_HOME or HF_HUB_CACHE, HF_TOKEN, HF_HUB_OFFLINE, HF_ENDPOINT: what every Hugging
Face tool honours). No guess on the string decides it: an existing directory is local; a name that is a valid hub id
(`NAME` or `ORG/NAME`, dots included, as in Qwen/Qwen2.5-Math-1.5B) and no local path goes to the hub; anything else
is a local directory that does not exist.

    model_dir("Qwen/Qwen2.5-Math-1.5B", key="model.path")   # the snapshot directory in the Hugging Face cache
    model_dir("runs/tiny/final", key="model.path")         # the directory itself

A failure is a `NotFound` (a FileNotFoundError: the command lines exit 2) whose message names the config key, the
id and which case it is: no such local directory; not in the cache while offline (HF_HUB_OFFLINE and the cache's path
named); the hub unreachable; no such repository (or a private one without a token); gated; no such revision.
"""

from __future__ import annotations

import re
from pathlib import Path

# a hub repo id: NAME or ORG/NAME, each part of letters, digits, '-', '_', '.' (not starting or ending with '.' / '-',
# no '--' or '..'), at most 96 characters: huggingface_hub's own rule, checked here so a local path is not sent there
_PART = r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?"
HUB_ID = re.compile(rf"(?:{_PART}/)?{_PART}")
# the model files a trainer needs: config, tokenizer, weights in safetensors (other weight formats are not fetched)
MODEL_FILES = ["*.json", "*.safetensors", "*.txt", "*.model", "*.tiktoken", "*.jinja", "*.py"]


class NotFound(FileNotFoundError):
    """A model or dataset a config names could not be found; the message says which case and what to do."""


def is_hub_id(name: str) -> bool:
    return (bool(HUB_ID.fullmatch(name)) and len(name) <= 96 and "--" not in name and ".." not in name
            and not Path(name).expanduser().exists())


def model_dir(name: str, revision: str = "", *, key: str = "model.path") -> Path:
    """The local directory of the model `name` (a directory, or a hub id at `revision`, default main)."""
    local = Path(name).expanduser()
    if local.is_dir():
        return local
    if local.exists():
        raise NotFound(f"{key} {name!r} is a file, not a model directory")
    if not is_hub_id(name):
        raise NotFound(f"{key} {name!r}: no such local directory")
    return snapshot(name, revision, repo_type="model", key=key, patterns=MODEL_FILES)


def snapshot(repo_id: str, revision: str = "", *, repo_type: str, key: str, patterns=None) -> Path:
    """The hub repo's files at `revision` in the Hugging Face cache (downloaded there first unless offline)."""
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub import errors as hub_errors

    at = f"{repo_id!r}" + (f" (revision {revision!r})" if revision else "")
    try:
        return Path(snapshot_download(repo_id, repo_type=repo_type, revision=revision or None,
                                      allow_patterns=patterns))
    except hub_errors.GatedRepoError:
        raise NotFound(f"{key} {at} is gated on the Hugging Face hub: accept its conditions on "
                       f"{constants.ENDPOINT}/{_page(repo_id, repo_type)} and log in (HF_TOKEN or `hf auth login`)"
                       ) from None
    except hub_errors.RevisionNotFoundError:
        raise NotFound(f"{key} {at}: the hub repository has no such revision") from None
    except hub_errors.RepositoryNotFoundError:
        raise NotFound(f"{key} {at}: not found on the Hugging Face hub ({constants.ENDPOINT}); a typo, or a private "
                       "repository without a token (HF_TOKEN), or a local directory that does not exist") from None
    except hub_errors.LocalEntryNotFoundError:
        cache = constants.HF_HUB_CACHE
        if constants.HF_HUB_OFFLINE:
            raise NotFound(f"{key} {at}: not in the Hugging Face cache ({cache}, HF_HOME / HF_HUB_CACHE) and "
                           "HF_HUB_OFFLINE is set, so it is not downloaded: fetch it where there is network "
                           f"(`hf download {repo_id}{' --repo-type dataset' if repo_type == 'dataset' else ''}`) or "
                           "name a local directory") from None
        raise NotFound(f"{key} {at}: the Hugging Face hub ({constants.ENDPOINT}) could not be reached and it is not "
                       f"in the cache ({cache})") from None
    except hub_errors.HfHubHTTPError as e:
        raise NotFound(f"{key} {at}: the Hugging Face hub refused it: {e}") from None


def _page(repo_id: str, repo_type: str) -> str:
    return f"datasets/{repo_id}" if repo_type == "dataset" else repo_id
