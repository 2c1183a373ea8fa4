"""The cache's entry format: one unit of work (an input's results, a layer's feature
visualisations) as bytes, written by the cache (``results.store.InputCache``) and by
shards, read back by both.

An entry is a magic number, the length of a JSON header, the header (its facts and where
each array and blob lies), the raw bytes of its numpy arrays and encoded pictures, and
the sha256 of all that: bytes that are not those written are a ``DamagedEntry``. An
input's result is an entry whose header names its format and its statistics fields
(``reportgen.statistics``): an intact entry of another format or other statistics is an
``EntryMismatch``, a miss that says why.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from reportgen.results.records import (
    GradCamResult,
    InputResult,
    LayerResult,
    PictureKey,
)
from reportgen.statistics import (
    POSITION_FIELDS,
    ChannelStats,
    file_fields,
    statistic_names,
)

_MAGIC = b"RGC2"
_DIGEST_BYTES = 32


class DamagedEntry(ValueError):
    """A cache entry whose bytes are not what was written (the reason says how)."""


def pack(header: dict[str, Any], arrays: dict[str, np.ndarray], blobs: dict[str, bytes]) -> bytes:
    """One entry as bytes: magic, header length, JSON header, raw array and blob bytes,
    and the sha256 of everything before it."""
    chunks: list[bytes] = []
    offset = 0
    layout: dict[str, Any] = {"arrays": {}, "blobs": {}}
    for name, array in arrays.items():
        data = np.ascontiguousarray(array)
        raw = data.tobytes()
        layout["arrays"][name] = [data.dtype.str, list(data.shape), offset, len(raw)]
        chunks.append(raw)
        offset += len(raw)
    for name, blob in blobs.items():
        layout["blobs"][name] = [offset, len(blob)]
        chunks.append(blob)
        offset += len(blob)
    head = json.dumps({"header": header, "layout": layout}, separators=(",", ":")).encode()
    content = b"".join([_MAGIC, struct.pack(">Q", len(head)), head, *chunks])
    return content + hashlib.sha256(content).digest()


def unpack(payload: bytes) -> tuple[dict[str, Any], dict[str, np.ndarray], dict[str, bytes]]:
    """The header, arrays and blobs of an entry ``pack`` made; DamagedEntry when its
    bytes are not those that were written (checked against its sha256 first)."""
    if payload[:4] != _MAGIC:
        raise DamagedEntry("not a reportgen cache entry of this format")
    if len(payload) < 12 + _DIGEST_BYTES:
        raise DamagedEntry("truncated")
    content, seal = payload[:-_DIGEST_BYTES], payload[-_DIGEST_BYTES:]
    if hashlib.sha256(content).digest() != seal:
        raise DamagedEntry("its sha256 does not match its content")
    try:
        (size,) = struct.unpack(">Q", content[4:12])
        meta = json.loads(content[12 : 12 + size])
        body = memoryview(content)[12 + size :]
        arrays = {}
        for name, (dtype, shape, offset, length) in meta["layout"]["arrays"].items():
            kind = np.dtype(dtype)
            if kind.hasobject or offset < 0 or offset + length > len(body):
                raise DamagedEntry(f"array {name!r} does not fit the entry")
            arrays[name] = np.frombuffer(body[offset : offset + length], dtype=kind).reshape(shape)
        blobs = {}
        for name, (offset, length) in meta["layout"]["blobs"].items():
            if offset < 0 or offset + length > len(body):
                raise DamagedEntry(f"blob {name!r} does not fit the entry")
            blobs[name] = bytes(body[offset : offset + length])
        return meta["header"], arrays, blobs
    except DamagedEntry:
        raise
    except (ValueError, KeyError, TypeError, struct.error) as exc:
        raise DamagedEntry(f"unreadable ({type(exc).__name__})") from exc


@dataclass
class Entry:
    """One cached unit of work: JSON-able facts, numpy arrays, encoded files."""

    header: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)


ENTRIES = "inputs"  # the folder of per-input entries under a cache root (or a shard)


def entry_relpath(key: str) -> str:
    """Where the entry of ``key`` lies under a cache root: the one layout, shared by the
    cache and by shards (``reportgen shard`` writes a cache root)."""
    return f"{ENTRIES}/{key[:2]}/{key}.bin"


def entry_bytes(entry: Entry) -> bytes:
    return pack(entry.header, entry.arrays, entry.blobs)


# --- an input's results ------------------------------------------------------------

# Written in every per-input entry's header with its statistics fields: an entry of
# another format, or made with other statistics, is a miss that says so.
# 5: the channel contributions (``statistics.CONTRIBUTION_FIELDS``) among the fields.
ENTRY_FORMAT = 5


class EntryMismatch(ValueError):
    """An intact entry of another format than this code reads (another entry format,
    other statistics, other layers): a miss, with the reason."""


def result_entry(result: InputResult) -> Entry:
    """An input's result as one cache entry: facts in the header, statistics as arrays,
    pictures as blobs."""
    held = [layer.stats.contributions for layer in result.layers.values()]
    header: dict[str, Any] = {
        "format": ENTRY_FORMAT,
        "fields": list(file_fields(tuple(held[0]) if held else ())),
        "input": result.input_id,
        "predictions": [list(p) for p in result.predictions],
        "gradcam": [[c.kind, c.class_index, c.layer, c.map] for c in result.gradcam],
        "layers": {
            name: {
                "selected": layer.selected,
                "range": None if layer.value_range is None else list(layer.value_range),
                "map_size": list(layer.stats.map_size),
            }
            for name, layer in result.layers.items()
        },
    }
    arrays = {
        f"{name}\x1f{field}": values
        for name, layer in result.layers.items()
        for field, values in layer.stats.fields().items()
    }
    blobs = {key.token(): data for key, data in result.pictures.items()}
    return Entry(header, arrays, blobs)


def check_entry_format(
    header: dict[str, Any], layer_names: Iterable[str], contributions: tuple[str, ...] = ()
) -> None:
    """EntryMismatch unless the entry is of this format, statistics (with these
    ``contributions``) and layers."""
    if header.get("format") != ENTRY_FORMAT:
        raise EntryMismatch(f"entry format {header.get('format')!r}, not {ENTRY_FORMAT}")
    fields = list(file_fields(contributions))
    if header.get("fields") != fields:
        raise EntryMismatch(f"statistics {header.get('fields')!r}, not {fields!r}")
    missing = [name for name in layer_names if name not in header.get("layers", {})]
    if missing:
        raise EntryMismatch(f"no layer {missing[0]!r}")


def result_from_entry(
    entry: Entry, layer_names: Iterable[str], contributions: tuple[str, ...] = ()
) -> InputResult:
    """The result an entry holds; EntryMismatch when the entry is of another format,
    other statistics (or ``contributions``) or lacks a layer asked for. An entry of this
    format is read as written: anything else wrong with it is an error, not a miss."""
    header = entry.header
    names = list(layer_names)
    check_entry_format(header, names, contributions)
    layers = {}
    for name in names:
        part = header["layers"][name]
        argmax_y, argmax_x = (entry.arrays[f"{name}\x1f{f}"] for f in POSITION_FIELDS)
        stats = ChannelStats(
            **{f: entry.arrays[f"{name}\x1f{f}"] for f in (*statistic_names(), *contributions)},
            argmax_y=argmax_y,
            argmax_x=argmax_x,
            map_size=(int(part["map_size"][0]), int(part["map_size"][1])),
        )
        low_high = part["range"]
        layers[name] = LayerResult(
            stats,
            [int(c) for c in part["selected"]],
            None if low_high is None else (float(low_high[0]), float(low_high[1])),
        )
    return InputResult(
        str(header["input"]),
        [(int(i), float(p)) for i, p in header["predictions"]],
        [GradCamResult(str(k), int(c), str(la), m) for k, c, la, m in header["gradcam"]],
        layers,
        {PictureKey.from_token(token): data for token, data in entry.blobs.items()},
    )
