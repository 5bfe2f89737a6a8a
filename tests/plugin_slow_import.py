"""A reward plug-in whose module takes 2 s to import (as one that imports torch or transformers can):
tests/test_plugins.py runs it under a 1 s deadline."""

import time

time.sleep(2.0)


def one(completion: str, row: dict) -> float:
    return 1.0
