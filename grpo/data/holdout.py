"""Which problems a source keeps out of training: a hash of the question's text, so the same ones whatever the
order of the rows, the seed or the machine (file and hub sources without a heldout section, reasoning-gym draws)."""

from __future__ import annotations

import hashlib


def held_out(question: str, percent: int) -> bool:
    """Is this question in the held-out share (`percent` of 100)?"""
    return int(hashlib.sha256(question.strip().encode()).hexdigest()[:8], 16) % 100 < percent
