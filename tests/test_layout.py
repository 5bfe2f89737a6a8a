"""The code's layout holds: the import layers and no import cycles (the contracts in pyproject.toml, also run by
.ci/run), and the old module paths still import for one release, with a warning."""

import importlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_the_import_contracts_are_kept():
    """`lint-imports`: a module imports only from layers below its own; no two modules import each other in a circle."""
    command = shutil.which("lint-imports")
    if command is None:
        pytest.skip("import-linter is not installed (pip install -e '.[dev]')")
    done = subprocess.run([command], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


@pytest.mark.parametrize("old, name", [("grpo.trainer", "run_grpo"), ("grpo.loss", "policy_loss"),
                                       ("grpo.advantages", "advantages")])
def test_the_old_module_paths_still_import_and_warn(old, name):
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=f"{old} moved to"):
        module = importlib.import_module(old)
    assert callable(getattr(module, name))
