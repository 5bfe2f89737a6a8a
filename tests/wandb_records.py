"""Reads a W&B offline run file (`run-<id>.wandb`) back, for the tests: wandb 0.31 writes it from its Go core and
ships no Python reader, so the framing (LevelDB's log format behind a 7-byte ":W&B" header: 32 KiB blocks of
records, each with a 7-byte header of CRC, length and type, long records split FIRST/MIDDLE/LAST) is read here
and every record is parsed with W&B's own protobuf schema (`wandb.proto.wandb_internal_pb2.Record`)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

BLOCK, HEADER, FULL, FIRST, MIDDLE, LAST = 32768, 7, 1, 2, 3, 4


def records(path: Path):
    """The file's records, each a wandb_internal_pb2.Record."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path}: not a W&B run file"
    pos, pending = 7, b""
    while pos + HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        if left < HEADER:  # a block's tail too short for a header is padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + HEADER])
        if kind == 0 and length == 0:  # zero padding
            pos += left
            continue
        chunk, pos = data[pos + HEADER:pos + HEADER + length], pos + HEADER + length
        pending = chunk if kind in (FULL, FIRST) else pending + chunk
        if kind in (FULL, LAST):
            record = pb.Record()
            record.ParseFromString(pending)
            yield record


def history(run_dir: Path) -> list[dict]:
    """Every history row (a `run.log` call) of every offline W&B run under `run_dir`/wandb, oldest file first."""
    rows = []
    for path in sorted(run_dir.glob("wandb/offline-run-*/run-*.wandb")):
        for record in records(path):
            if record.WhichOneof("record_type") == "history":
                rows.append({item.key or "/".join(item.nested_key): json.loads(item.value_json)
                             for item in record.history.item})
    return rows


def run_ids(run_dir: Path) -> set[str]:
    """The W&B run ids the offline run files under `run_dir`/wandb belong to."""
    ids = set()
    for path in run_dir.glob("wandb/offline-run-*/run-*.wandb"):
        for record in records(path):
            if record.WhichOneof("record_type") == "run":
                ids.add(record.run.run_id)
    return ids
