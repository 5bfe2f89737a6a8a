"""Reward plug-ins that misbehave, each as a user might write it by mistake (tests/test_plugins.py)."""

import math
import os
import time


def length(completion: str, row: dict) -> float:
    return float(len(completion))


def answer_matches(completion: str, row: dict) -> bool:  # a user's verifier: the row's answer appears after </think>
    return str(row["answer"]) in completion.rsplit("</think>", 1)[-1]


def sleeps(completion: str, row: dict) -> float:
    time.sleep(3600)
    return 1.0


def raises(completion: str, row: dict) -> float:
    raise ValueError(f"cannot score {completion[:10]!r}")


def crashes(completion: str, row: dict) -> float:
    os._exit(9)


def returns_text(completion: str, row: dict):
    return "high"


def returns_nan(completion: str, row: dict) -> float:
    return math.nan


def no_opinion(completion: str, row: dict):
    return None


def one_argument(completion: str) -> float:
    return 0.0


NOT_A_FUNCTION = 3


def digit_share(completion: str, row: dict) -> float:  # a dense signal: differs between almost any two samples
    return sum(ch.isdigit() for ch in completion) / max(len(completion), 1)


def products():  # `--suite plugin_examples:products`: the built-in products task's held-out problems (16)
    from grpo.data import tasks
    from grpo.data.environments import Environment

    def load(split, seed):
        return [dict(r, id=str(i)) for i, r in enumerate(tasks.products(16, split=split, seed=seed, digits=3))], {}

    return Environment("products", load, instruction="")


def huge(completion: str, row: dict) -> int:  # an int no float holds
    return 10**400


def returns_generator(completion: str, row: dict):  # not a number, and it does not pickle
    return (c for c in completion)


def starts_a_sleeper(completion: str, row: dict) -> float:  # leaves a child behind, then hangs past the deadline
    import subprocess

    child = subprocess.Popen(["sleep", "300"])
    with open(row["pid_file"], "w") as f:
        f.write(str(child.pid))
    time.sleep(3600)
    return 1.0
