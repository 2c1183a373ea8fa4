"""Which layer's output a Conv2d reads: the module graph, traced by hooks in one dry pass.

Forward hooks on every module record which tensor each call returned and which it was
given. A convolution's input is then followed back through per-channel modules (batch
norm, activations, pooling, dropout, squeeze-and-excitation: each output channel is a
function of the same input channel) until it reaches a recorded layer, whose channel
``i`` is then the convolution's input channel ``i``.

Hooks, not ``torch.fx``: they see any model that runs, including forwards with Python
control flow or functional calls that symbolic tracing cannot follow, and they already
own this project's dry passes (``reportgen.nn.hooks``). What they cannot see is an
operation outside modules (``x + identity`` in a residual block, ``torch.cat``): the
walk stops there and names the nearest module whose output the convolution reads.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

# Modules whose output channel c depends only on input channel c (and, for
# squeeze-and-excitation, on a per-channel scale): the walk passes through them.
PER_CHANNEL = frozenset(
    {
        "BatchNorm1d",
        "BatchNorm2d",
        "SyncBatchNorm",
        "FrozenBatchNorm2d",
        "ReLU",
        "ReLU6",
        "LeakyReLU",
        "PReLU",
        "ELU",
        "SELU",
        "CELU",
        "GELU",
        "SiLU",
        "Mish",
        "Hardswish",
        "Hardsigmoid",
        "Sigmoid",
        "Tanh",
        "Hardtanh",
        "Softplus",
        "Identity",
        "Dropout",
        "Dropout2d",
        "AlphaDropout",
        "StochasticDepth",
        "MaxPool2d",
        "AvgPool2d",
        "AdaptiveAvgPool2d",
        "AdaptiveMaxPool2d",
        "SqueezeExcitation",
    }
)


@dataclass(frozen=True)
class InputSource:
    """Where a convolution's input comes from."""

    layer: str | None  # the recorded layer whose channels are its input channels
    module: str | None  # the nearest module whose output it reads (None: see below)
    through: tuple[str, ...] = ()  # per-channel modules between ``layer`` and it, in order
    network_input: bool = False  # it reads the image the network is given


@dataclass
class _Call:
    name: str
    type: str
    leaf: bool
    given: Any  # the first tensor argument (kept alive, so ids stay unique)
    returned: Any
    # Tensors' in-place version counters when the call ended: an in-place operation
    # outside modules (``out += identity``) shows as a version no call accounts for.
    given_version: int
    returned_version: int


def conv_input_sources(
    module: Any, size: tuple[int, int], device: Any, recorded: Iterable[str]
) -> dict[str, InputSource]:
    """For every recorded Conv2d, where its input comes from (one dry forward pass)."""
    import torch

    from reportgen.nn.hooks import ForwardHooks, dry_pass_mode

    chosen = set(recorded)
    named = [(n, m) for n, m in module.named_modules() if n]
    calls: list[_Call] = []

    def note(name: str, sub: Any, inputs: tuple[Any, ...], output: Any) -> None:
        given = next((t for t in inputs if isinstance(t, torch.Tensor)), None)
        leaf = not any(True for _ in sub.children())
        calls.append(
            _Call(name, type(sub).__name__, leaf, given, output, _version(given), _version(output))
        )

    image = torch.zeros(1, 3, *size, device=device)
    with ForwardHooks(named, note), dry_pass_mode(module):
        module(image)
    convs = {n for n, m in named if n in chosen and isinstance(m, torch.nn.Conv2d)}
    sources = {}
    for index, call in enumerate(calls):
        if call.name in convs and call.name not in sources and call.given is not None:
            sources[call.name] = _walk(calls, index, image, chosen)
    return sources


def _walk(calls: list[_Call], reader: int, image: Any, chosen: set[str]) -> InputSource:
    """Back from what ``calls[reader]`` read to a recorded layer, through per-channel
    modules only; any step that is not one ends the walk unlinked."""
    tensor, seen = calls[reader].given, calls[reader].given_version
    first = _writers(calls, reader, tensor)
    nearest = calls[first[-1]].name if first else None
    unlinked = InputSource(None, nearest, network_input=not first and tensor is image)
    through: list[str] = []
    writers = first
    while writers:
        step = None
        for index in reversed(writers):
            call = calls[index]
            if call.returned_version != seen:
                return unlinked  # changed in place by something that is not a module
            if call.name in chosen:
                return InputSource(call.name, nearest, tuple(reversed(through)))
            in_place = call.leaf and call.given is tensor
            if not (in_place or index == writers[0]):
                continue  # a container handing on its last child's output
            if call.type not in PER_CHANNEL or not _same_channels(call):
                return unlinked
            through.append(call.name)
            if in_place:
                seen -= 1  # one in-place operation: the version before it ran
            else:
                step = index
        if step is None:
            break
        tensor, seen = calls[step].given, calls[step].given_version
        writers = _writers(calls, step, tensor)
    return unlinked


def _writers(calls: list[_Call], before: int, tensor: Any) -> list[int]:
    """The calls before ``before`` that returned ``tensor``, earliest first."""
    return [i for i in range(before) if calls[i].returned is tensor]


def _version(value: Any) -> int:
    return int(getattr(value, "_version", -1))


def _same_channels(call: _Call) -> bool:
    given = tuple(getattr(call.given, "shape", ()))
    returned = tuple(getattr(call.returned, "shape", ()))
    return len(given) > 1 and len(returned) > 1 and given[1] == returned[1]
