"""What the terminal shows during a run: our own lines, the progress bars, and errors. Third-party start-up
noise (vLLM's warnings about Triton, LD_PRELOAD and thread binding; library deprecation notices; the
checkpoint writer's progress bars; C++ warnings printed while the engine starts) goes to
<run dir>/logs/third_party.log instead; errors from those libraries still reach the terminal.

`quiet` is what `python -m grpo.train` calls unless the user asks for the noise: `run.verbose: true`, or vLLM's
own logging settings in the environment (VLLM_LOGGING_LEVEL, VLLM_LOGGING_CONFIG_PATH, VLLM_CONFIGURE_LOGGING),
which are then left to vLLM.

vLLM configures its loggers when it is imported, in this process and in any worker process it starts, from
VLLM_LOGGING_CONFIG_PATH: `quiet` writes such a config (logs/vllm_logging.json) and points that variable at it,
and sets this process's loggers the same way at once (for a vLLM already imported). GRPO_THIRD_PARTY_LOG names
the log file for the rollout
engine, which sends what C++ code writes to stderr while vLLM starts there too (grpo/rollout/vllm_engine.py).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

LIBRARIES = ("vllm", "transformers", "huggingface_hub", "accelerate", "peft", "datasets", "torch")
USER_SETTINGS = ("VLLM_LOGGING_LEVEL", "VLLM_LOGGING_CONFIG_PATH", "VLLM_CONFIGURE_LOGGING")
LOG_ENV = "GRPO_THIRD_PARTY_LOG"  # read by the vLLM engine while it starts


def user_asked(environ=os.environ) -> bool:
    """Has the user set vLLM's own logging in the environment? The values this project sets itself do not count:
    VLLM_LOGGING_LEVEL defaulted by the engine module (GRPO_VLLM_LEVEL_DEFAULTED) and the config `quiet` wrote
    (LOG_ENV set with it)."""
    ours = {"VLLM_LOGGING_LEVEL": "GRPO_VLLM_LEVEL_DEFAULTED", "VLLM_LOGGING_CONFIG_PATH": LOG_ENV}
    return any(name in environ and not (name in ours and ours[name] in environ) for name in USER_SETTINGS)


def logging_config(log_file: Path) -> dict:
    """The dictConfig that sends the LIBRARIES' records to `log_file` (vLLM's from INFO: its engine settings; the
    others' from WARNING: transformers' INFO is every config it reads or writes) and their errors to stderr."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"line": {"format": "%(asctime)s %(levelname)s %(name)s [pid %(process)d] %(message)s"},
                       "short": {"format": "%(levelname)s %(name)s: %(message)s"}},
        "handlers": {"file": {"class": "logging.FileHandler", "filename": str(log_file), "mode": "a",
                              "formatter": "line", "level": "INFO"},
                     "errors": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr", "formatter": "short",
                                "level": "ERROR"}},
        "loggers": {name: {"handlers": ["file", "errors"], "level": "INFO" if name == "vllm" else "WARNING",
                           "propagate": False} for name in LIBRARIES}
        | {"py.warnings": {"handlers": ["file"], "level": "WARNING", "propagate": False}},
    }


class _Stderr(logging.StreamHandler):
    """A handler writing to whatever sys.stderr is when a record comes (it may be swapped after setup)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


def quiet(run_dir: Path) -> Path:
    """Send third-party noise to <run_dir>/logs/third_party.log (returned) from now on, in this process and the
    engine's worker processes. In this process the library loggers are set up directly (a whole dictConfig would
    close every other handler of the process); a later call moves them to its own run's file."""
    logs = run_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log_file = (logs / "third_party.log").resolve()
    config = logging_config(log_file)
    config_file = logs / "vllm_logging.json"
    tmp = config_file.with_name(f"{config_file.name}.{os.getpid()}.tmp")  # each process of a run writes it: whole
    tmp.write_text(json.dumps(config, indent=2))
    os.replace(tmp, config_file)
    os.environ["VLLM_LOGGING_CONFIG_PATH"] = str(config_file.resolve())
    os.environ[LOG_ENV] = str(log_file)

    to_file = logging.FileHandler(log_file)
    to_file.setFormatter(logging.Formatter(config["formatters"]["line"]["format"]))
    errors = _Stderr()
    errors.setLevel(logging.ERROR)
    errors.setFormatter(logging.Formatter(config["formatters"]["short"]["format"]))
    for name, settings in config["loggers"].items():
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
            if getattr(handler, "grpo_quiet", False):  # a previous run's: its file is done with
                handler.close()
        for handler in (to_file, errors) if "errors" in settings["handlers"] else (to_file,):
            handler.grpo_quiet = True
            logger.addHandler(handler)
        logger.setLevel(settings["level"])
        logger.propagate = False
    logging.captureWarnings(True)  # warnings.warn from any library: to py.warnings, the file
    try:
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # "Writing model shards" at every checkpoint
    except ImportError:
        pass
    return log_file
