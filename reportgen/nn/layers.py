"""Which layers a model has, which ones the user meant, and what their outputs are."""

from __future__ import annotations

import difflib
import fnmatch
from dataclasses import dataclass
from typing import Any

from reportgen.errors import ReportgenError

CONV_KEYWORD = "conv"


@dataclass(frozen=True)
class LayerInfo:
    name: str
    type: str
    output_shape: tuple[int, ...] | None  # without the batch dimension; None if never run
    is_conv: bool
    is_leaf: bool
    value: str  # what a recorded value is, e.g. "output of Conv2d, before ReLU"
    # Its output is the model's output (the logits) or one step before it: it comes from
    # the last module with weights, or from a parameter-free module run after that one.
    at_logits: bool = False


def trace_layers(module: Any, input_size: int = 224, device: Any = "cpu") -> list[LayerInfo]:
    """Run one dummy forward pass and describe every named module, in model order.

    Output shapes come from the pass; so does the order in which leaf modules ran,
    which tells what op follows a layer (e.g. an in-place ReLU).
    """
    import torch

    from reportgen.nn.hooks import ForwardHooks, dry_pass_mode

    named = [(n, m) for n, m in module.named_modules() if n]
    shapes: dict[str, tuple[int, ...]] = {}
    finished: list[str] = []  # leaf modules in the order their forward finished
    leaves = {n for n, m in named if not any(True for _ in m.children())}

    def hook(name: str, _mod: Any, _inp: Any, out: Any) -> None:
        if name not in shapes and isinstance(out, torch.Tensor):
            shapes[name] = tuple(out.shape[1:])
        if name in leaves:
            finished.append(name)

    with ForwardHooks(named, hook), dry_pass_mode(module):
        module(torch.zeros(1, 3, input_size, input_size, device=device))
    modules = dict(named)
    at_logits = _at_logits(named, finished)
    infos = []
    for name, sub in named:
        infos.append(
            LayerInfo(
                name=name,
                type=type(sub).__name__,
                output_shape=shapes.get(name),
                is_conv=isinstance(sub, torch.nn.Conv2d),
                is_leaf=name in leaves,
                value=_describe_value(name, sub, finished, modules),
                at_logits=name in at_logits,
            )
        )
    return infos


def _at_logits(named: list[tuple[str, Any]], finished: list[str]) -> set[str]:
    """Modules whose output is made by the last leaf with weights that ran, or by a leaf
    run after it (a ReLU, a pooling, a flatten): their units are the model's outputs.
    Run order, not definition order: auxiliary heads defined later but not run in eval
    (GoogLeNet, Inception) are not the logits."""
    weighted = {n for n, m in named if any(True for _ in m.parameters(recurse=False))}
    last = max((i for i, n in enumerate(finished) if n in weighted), default=None)
    if last is None:
        return set()
    # When each module's output was made: the last finish of a leaf inside it (a
    # module's name is a dotted prefix of its leaves' names).
    made_at: dict[str, int] = {}
    for position, leaf in enumerate(finished):
        parts = leaf.split(".")
        for depth in range(1, len(parts) + 1):
            made_at[".".join(parts[:depth])] = position
    names = {name for name, _ in named}
    return {name for name, position in made_at.items() if position >= last and name in names}


def _describe_value(name: str, sub: Any, finished: list[str], modules: dict[str, Any]) -> str:
    """ "output of Conv2d, before ReLU (in place)": what the recorded tensor is."""
    text = f"output of {type(sub).__name__}"
    if name not in finished:
        last_leaf = None
        # A container: its output is the output of the last leaf it ran.
        for leaf in finished:
            if leaf.startswith(name + "."):
                last_leaf = leaf
        if last_leaf is None:
            return text
        position = len(finished) - 1 - finished[::-1].index(last_leaf)
    else:
        position = finished.index(name)
    if position + 1 < len(finished):
        following = modules[finished[position + 1]]
        kind = type(following).__name__
        if getattr(following, "inplace", False):
            text += f", before {kind} (recorded before the in-place {kind} changes it)"
        else:
            text += f", before {kind}"
    else:
        text += " (the model's last module)"
    return text


def closest_names(word: str, names: list[str], n: int = 4, cutoff: float = 0.5) -> list[str]:
    """The names most like ``word``; equally close ones in model order (not reversed
    alphabetical, as ``difflib.get_close_matches`` gives: 'features.O' -> 'features.0')."""
    matcher = difflib.SequenceMatcher(b=word)
    scored = []
    for index, name in enumerate(names):
        matcher.set_seq1(name)
        ratio = matcher.ratio()
        if ratio >= cutoff:
            scored.append((-ratio, index, name))
    return [name for _, _, name in sorted(scored)[:n]]


def gate_layers(infos: list[LayerInfo]) -> list[str]:
    """The Conv2d layers the forward pass reaches whose output is one value per channel
    ([C, 1, 1]: a squeeze-and-excitation gate, a convolution after global pooling)."""
    return [
        info.name
        for info in infos
        if info.is_conv and info.output_shape is not None and _cells(info.output_shape) == 1
    ]


def default_layers(infos: list[LayerInfo]) -> list[str]:
    """The layers a run shows when -l is not given: every Conv2d the forward pass reaches
    whose output is a map. The gates (``gate_layers``) are left out: a unit's scalar per
    input is not what a map-by-map tour of a network is for, and EfficientNet's 32 gates
    (9,340 units) would be a third of its report. -l conv shows them too. A model whose
    every Conv2d is a gate (a tiny input) gets them all."""
    reached = [info for info in infos if info.is_conv and info.output_shape is not None]
    gates = set(gate_layers(infos))
    maps = [info.name for info in reached if info.name not in gates]
    return maps or [info.name for info in reached]


def _cells(shape: Any) -> int:
    """Cells per channel of an output shape [C, H, W] (1 for [C])."""
    return int(shape[1] * shape[2]) if len(shape) == 3 else 1


def resolve_layers(infos: list[LayerInfo], patterns: tuple[str, ...], model_name: str) -> list[str]:
    """Exact names, glob patterns or ``conv``, in model order. Default: every Conv2d whose
    output is a map (``default_layers``)."""
    names = [info.name for info in infos]
    # Patterns, 'conv' and the default pick only layers the forward pass reaches (e.g.
    # not GoogLeNet's auxiliary heads in eval mode); an exact name that is never
    # reached is an error.
    reached = {info.name for info in infos if info.output_shape is not None}
    if not patterns:
        chosen = default_layers(infos)
        if not chosen:
            raise ReportgenError(
                f"model {model_name!r} has no Conv2d layer; choose layers with -l "
                f"(see 'reportgen layers {model_name}')"
            )
        return chosen
    wanted: set[str] = set()
    for pattern in patterns:
        if pattern == CONV_KEYWORD or any(ch in pattern for ch in "*?["):
            if pattern == CONV_KEYWORD:
                matched = {info.name for info in infos if info.is_conv}
            else:
                matched = {n for n in names if fnmatch.fnmatchcase(n, pattern)}
            if matched and not matched & reached:
                raise ReportgenError(
                    f"layer pattern {pattern!r} only matches layers of {model_name!r} that the "
                    f"forward pass never reaches (e.g. {sorted(matched)[0]!r}); choose others"
                )
            matched &= reached
        else:
            matched = {pattern} if pattern in names else set()
        if not matched:
            close = closest_names(pattern, names)
            hint = f"; closest: {', '.join(close)}" if close else ""
            raise ReportgenError(
                f"layer {pattern!r} matches nothing in {model_name!r}{hint} "
                f"(see 'reportgen layers {model_name}')"
            )
        wanted |= matched
    by_name = {info.name: info for info in infos}
    unreached = sorted(n for n in wanted if by_name[n].output_shape is None)
    if unreached:
        raise ReportgenError(
            f"layer {unreached[0]!r} of {model_name!r} is never reached by the forward pass "
            "(or returns no tensor); choose another layer"
        )
    return [n for n in names if n in wanted]
