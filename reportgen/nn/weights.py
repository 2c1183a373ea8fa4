"""Where a model's weights come from: torchvision's catalogue, a local folder,
the torch hub cache, a download, or a user's state-dict file.

Resolution only finds and checks files; ``models`` builds the network.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reportgen.errors import ReportgenError
from reportgen.nn.checkpoint_limits import check_zip_bounds

WEIGHTS_DIR_ENV = "REPORTGEN_WEIGHTS_DIR"
OFFLINE_ENV = "REPORTGEN_OFFLINE"
# torchvision names its files "<name>-<first hex digits of sha256>.pth".
HASH_IN_NAME = re.compile(r"-([a-f0-9]{6,})\.")


@dataclass(frozen=True)
class ResolvedWeights:
    """What ``--weights`` turned into for one model."""

    kind: str  # "torchvision", "none" or "file"
    label: str  # for people: "IMAGENET1K_V1", "none (random, seed 0)", a file name
    path: Path | None  # the checkpoint file, when there is one
    enum_member: Any = None  # torchvision WeightsEnum member: transforms, categories
    note: str | None = None  # e.g. why a fallback was taken

    def describe(self) -> str:
        # The file's name only: a report never holds a path of the machine that made it.
        where = f" from {self.path.name}" if self.path else ""
        return f"{self.label}{where}"


def weights_dirs(weights_dir: str | None) -> list[Path]:
    """Folders searched for torchvision's checkpoint files, in order."""
    import torch

    dirs: list[Path] = []
    if weights_dir:
        dirs.append(Path(weights_dir))
    elif os.environ.get(WEIGHTS_DIR_ENV):
        dirs.append(Path(os.environ[WEIGHTS_DIR_ENV]))
    dirs.append(Path(torch.hub.get_dir()) / "checkpoints")
    return dirs


def model_weights_enum(model_name: str) -> Any:
    from torchvision.models import get_model_weights

    try:
        return get_model_weights(model_name)
    except (ValueError, KeyError):
        return None


def resolve_weights(
    model_name: str, spec: str, weights_dir: str | None, offline: bool, seed: int
) -> ResolvedWeights:
    """Turn a ``--weights`` value into a checked source of weights."""
    spec_lower = spec.lower()
    if spec_lower == "none":
        return ResolvedWeights("none", f"none (random initialisation, seed {seed})", None)
    enum = model_weights_enum(model_name)
    members = list(enum) if enum is not None else []
    offline = offline or os.environ.get(OFFLINE_ENV, "") not in ("", "0")
    dirs = weights_dirs(weights_dir)
    if spec_lower == "imagenet":
        if not members:
            raise ReportgenError(
                f"model {model_name!r} has no pretrained weights in torchvision; "
                "use --weights none or --weights PATH"
            )
        return _resolve_imagenet(model_name, enum, members, dirs, offline)
    member_names = {m.name: m for m in members}
    if spec.upper() in member_names or spec.upper() == "DEFAULT":
        member = enum.DEFAULT if spec.upper() == "DEFAULT" else member_names[spec.upper()]
        path = find_local(member, dirs) or (None if offline else download(member, dirs[-1]))
        if path is None:
            raise _missing_weights_error(model_name, member, dirs, offline)
        return ResolvedWeights("torchvision", member.name, path, member)
    path = Path(spec)
    if path.is_file():
        member = torchvision_member_of(path, members)
        if member is not None:
            # torchvision's own file under another name or folder: built as torchvision
            # builds it for those weights (DenseNet's old key names, GoogLeNet's and
            # Inception's transform_input), with its transforms and categories.
            note = f"{path.name} is torchvision's {member.name} checkpoint (by its sha256)"
            return ResolvedWeights("torchvision", member.name, path, member, note)
        return ResolvedWeights("file", file_label(path), path)
    if path.exists():
        raise ReportgenError(f"weights {spec!r} is not a file")
    choices = ["imagenet", "none", "DEFAULT", *member_names]
    close = difflib.get_close_matches(spec, choices, n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise ReportgenError(
        f"weights {spec!r} for {model_name!r} is neither a file nor one of "
        f"{', '.join(choices)}{hint}"
    )


def _resolve_imagenet(
    model_name: str, enum: Any, members: list[Any], dirs: list[Path], offline: bool
) -> ResolvedWeights:
    default = enum.DEFAULT
    path = find_local(default, dirs)
    if path is None and not offline:
        path = download(default, dirs[-1])
    if path is not None:
        return ResolvedWeights("torchvision", default.name, path, default)
    # DEFAULT is not at hand: another ImageNet checkpoint of the same model will do,
    # and the report says which one was used and why.
    for member in reversed(members):
        if member is default:
            continue
        other = find_local(member, dirs)
        if other is not None:
            note = (
                f"torchvision's DEFAULT weights for {model_name} ({default.name}) are not "
                f"available offline; using {member.name} from {other.name}"
            )
            return ResolvedWeights("torchvision", member.name, other, member, note)
    raise _missing_weights_error(model_name, default, dirs, offline)


def file_name(member: Any) -> str:
    return os.path.basename(member.url)


def find_local(member: Any, dirs: list[Path]) -> Path | None:
    """The first copy of ``member``'s file in ``dirs``, its hash prefix checked."""
    name = file_name(member)
    for directory in dirs:
        candidate = directory / name
        if candidate.is_file():
            check_hash_prefix(candidate)
            return candidate
    return None


def torchvision_member_of(path: Path, members: list[Any]) -> Any:
    """The weights member whose checkpoint ``path`` is, by content: torchvision's file
    names carry the first hex digits of their sha256 (``densenet121-a639ec97.pth``), so a
    copy is recognised whatever it is called. None for any other file."""
    prefixes = {}
    for member in members:
        match = HASH_IN_NAME.search(file_name(member))
        if match:
            prefixes[match.group(1)] = member
    if not prefixes:
        return None
    try:
        digest = _sha256_of(path)
    except OSError:
        return None
    return next((m for prefix, m in prefixes.items() if digest.startswith(prefix)), None)


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_label(path: Path) -> str:
    """How a ``--weights PATH`` file is named in the report: its file name, and where the
    name carries a torchvision hash (``resnet18-f37072fd.pth``) that its content does not
    match, that it is not torchvision's file (a name alone vouches for nothing)."""
    match = HASH_IN_NAME.search(path.name)
    if not match:
        return path.name
    try:
        digest = _sha256_of(path)
    except OSError:
        return path.name
    if digest.startswith(match.group(1)):
        return path.name
    return (
        f"{path.name} (not torchvision's file of that name: its sha256 starts "
        f"{digest[: len(match.group(1))]})"
    )


def check_hash_prefix(path: Path) -> None:
    """Refuse a file whose sha256 does not start with the hash in its name."""
    match = HASH_IN_NAME.search(path.name)
    if not match:
        return
    expected = match.group(1)
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    if not digest.hexdigest().startswith(expected):
        raise ReportgenError(
            f"weights file {path} is damaged: its sha256 starts with "
            f"{digest.hexdigest()[: len(expected)]}, its name says {expected}; "
            "delete it and fetch it again"
        )


def download(member: Any, cache_dir: Path) -> Path | None:
    """Download into the torch hub cache; None when the network is not reachable."""
    import urllib.error

    import torch

    target = cache_dir / file_name(member)
    match = HASH_IN_NAME.search(target.name)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(
            member.url, str(target), hash_prefix=match.group(1) if match else None, progress=False
        )
    except (urllib.error.URLError, OSError, TimeoutError, RuntimeError):
        target.unlink(missing_ok=True)
        return None
    return target


def _missing_weights_error(
    model_name: str, member: Any, dirs: list[Path], offline: bool
) -> ReportgenError:
    looked = ", ".join(str(d) for d in dirs)
    how = "downloads are off (--offline)" if offline else f"downloading {member.url} failed"
    return ReportgenError(
        f"weights {file_name(member)} ({member.name}) for {model_name!r} not found in "
        f"{looked}, and {how}; put the file in a folder given by --weights-dir (or "
        f"{WEIGHTS_DIR_ENV}), use --weights PATH, or --weights none for random weights"
    )


ZIP_MAGIC = b"PK\x03\x04"  # torch.save's default format is a zip archive
PICKLE_MAGIC = b"\x80"  # the legacy format (and plain pickles) start with PROTO
_UNSUPPORTED_GLOBAL = re.compile(
    r"(?:Unsupported global: GLOBAL|unsupported GLOBAL) ([A-Za-z_][\w.]*)", re.IGNORECASE
)
# Parts of torch's message that are advice to the user of torch.load, not the reason: the
# way round the safety (weights_only=False) is never repeated to reportgen's users.
_ADVICE = ("weights_only", "check the documentation", "file an issue", "trusted source")
_UNPICKLER_ERROR = re.compile(r"WeightsUnpickler error:\s*(.+)", re.DOTALL)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _one_line(text: str, limit: int = 160) -> str:
    """A library's multi-line message as one short plain line."""
    plain = " ".join(_ANSI.sub("", text).split())
    return plain if len(plain) <= limit else plain[: limit - 3] + "..."


def load_state_dict(path: Path) -> dict[str, Any]:
    """Read a checkpoint as plain tensors only: no code in it is ever run.

    The file is sniffed first (safetensors, torch.save's zip format or a pickle: by its
    content, not its name); safetensors are read without unpickling anything, the others
    with ``torch.load(weights_only=True)``, whose unpickler refuses every global that is
    not a tensor type: a file asking to import or call anything else is refused before
    any of it runs.
    """
    from reportgen.nn.safetensors_file import looks_like_safetensors, read_safetensors

    head = _file_head(path)
    # The format is judged by the content: a safetensors file under any name, a
    # torch.save file even when it is called .safetensors.
    if looks_like_safetensors(head):
        return _strip_module_prefix(read_safetensors(path))
    _check_torch_format(path, head)
    state = _unwrap_state_dict(_torch_load(path))
    if state is None:
        raise ReportgenError(
            f"weights file {path} holds no state dict (a mapping of names to tensors)"
        )
    _refuse_nan(path, state)
    return state


def _file_head(path: Path) -> bytes:
    try:
        with path.open("rb") as handle:
            head = handle.read(16)
    except OSError as exc:
        raise ReportgenError(f"cannot read weights file {path}: {exc.strerror or exc}") from exc
    if not head:
        raise ReportgenError(
            f"weights file {path} is not a PyTorch checkpoint: it is empty (0 bytes)"
        )
    return head


def _check_torch_format(path: Path, head: bytes) -> None:
    """torch.save's zip format (its size bounded before torch reads it) or a pickle."""
    from reportgen.nn.safetensors_file import named_safetensors

    if not head.startswith((ZIP_MAGIC, PICKLE_MAGIC)):
        what = (
            "is not a safetensors file despite its name, nor a PyTorch checkpoint"
            if named_safetensors(path)
            else "is not a PyTorch checkpoint"
        )
        raise ReportgenError(
            f"weights file {path} {what}: it is neither safetensors, torch.save's zip "
            f"format nor a pickle (it starts with {head[:8]!r})"
        )
    if head.startswith(ZIP_MAGIC):
        check_zip_bounds(path)


def _torch_load(path: Path) -> Any:
    """``torch.load(weights_only=True)``, its refusals as one line."""
    import pickle
    import warnings

    import torch

    try:
        with warnings.catch_warnings():
            # torch's notes about the file's pickle protocol are not the user's business.
            warnings.simplefilter("ignore", UserWarning)
            # An open file, not its name: torch would judge the format by the extension.
            with path.open("rb") as handle:
                return torch.load(handle, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        found = _UNSUPPORTED_GLOBAL.search(text)
        if found:
            raise ReportgenError(
                f"refusing weights file {path}: it asks to import {found.group(1)}, and "
                "reportgen loads checkpoints with weights_only=True (plain tensors only); "
                "nothing in it was run"
            ) from exc
        raise ReportgenError(
            f"refusing weights file {path}: {_unpickler_reason(text)}, and reportgen loads "
            "checkpoints with weights_only=True (plain tensors only); nothing in it was run"
        ) from exc
    except Exception as exc:  # noqa: BLE001 - any failure to parse means "not a checkpoint"
        raise ReportgenError(
            f"weights file {path} is not a PyTorch checkpoint "
            f"({type(exc).__name__}: {_one_line(str(exc))})"
        ) from exc


def _refuse_nan(path: Path, state: dict[str, Any]) -> None:
    """A NaN in a checkpoint is never a weight: it would turn every map it reaches into
    NaN. (Infinity is left to the forward pass, which stops at a value that is not
    finite: a mask buffer may hold -inf on purpose.)"""
    import torch

    for name, tensor in state.items():
        if tensor.is_floating_point() or tensor.is_complex():
            count = int(torch.isnan(tensor).sum())
            if count:
                raise ReportgenError(
                    f"weights file {path} holds NaN in {name!r} ({count} of "
                    f"{tensor.numel()} values): reportgen shows finite networks only"
                )


def _unpickler_reason(text: str) -> str:
    """Why torch's restricted unpickler refused a file, in reportgen's words: its own
    reason (an opcode, a type), never its advice to load the file unsafely."""
    detail = _UNPICKLER_ERROR.search(text)
    body = detail.group(1) if detail else text
    parts = [
        part
        for part in re.split(r"\n\s*\n|(?<=\.)\s+(?=[A-Z])", body)
        if part.strip() and not any(word in part.lower() for word in _ADVICE)
    ]
    reason = _one_line(" ".join(parts), 120)
    return (
        f"it holds more than plain tensors ({reason})"
        if reason
        else ("it holds more than plain tensors")
    )


def _unwrap_state_dict(loaded: Any) -> dict[str, Any] | None:
    import torch

    if isinstance(loaded, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            inner = loaded.get(key)
            if isinstance(inner, dict):
                loaded = inner
                break
        if loaded and all(isinstance(v, torch.Tensor) for v in loaded.values()):
            return _strip_module_prefix({str(k): v for k, v in loaded.items()})
    return None


def _strip_module_prefix(state: dict[str, Any]) -> dict[str, Any]:
    """Checkpoints saved from DataParallel prefix every key with "module."."""
    if all(key.startswith("module.") for key in state):
        return {key[len("module.") :]: value for key, value in state.items()}
    return state
