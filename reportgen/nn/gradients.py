"""One forward pass and, where something needs them, the gradients of chosen class
logits at chosen layers: what Grad-CAM and the channel contributions are made from.

Every recorded layer's output is copied for the statistics inside its forward hook (the
hook owner: ``reportgen.nn.hooks``), before an in-place op after it (ReLU) can change it.
A layer whose gradient is wanted keeps its output tensor and hands the rest of the
network a copy: an in-place op then changes the copy, never the value whose gradient is
taken. No parameter takes part in the graph (its ``requires_grad`` is off during the
pass), and the input does not either: the first wanted output becomes the graph's leaf,
so the backward pass computes only the gradients between the logits and that layer, no
weight gradient. One backward pass (``torch.autograd.grad``) per class kind reads the
gradients at every wanted layer at once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from reportgen.errors import ReportgenError
from reportgen.nn.hooks import ForwardHooks


@dataclass
class ClassGradients:
    """One class kind (the top prediction, the target class) over a batch."""

    classes: list[int]  # per input
    scores: torch.Tensor  # [B]: the logit of each input's class, detached
    # layer -> d score / d output, detached; a layer off the path to the logits is absent
    gradients: dict[str, torch.Tensor]


@dataclass
class BatchPass:
    """What one pass over a batch gives: the logits (on the CPU), each recorded layer's
    output (float32, on the CPU), each wanted layer's output (on the device) and the
    gradients of every class kind asked for."""

    logits: torch.Tensor
    recorded: dict[str, torch.Tensor]
    values: dict[str, torch.Tensor]
    classes: dict[str, ClassGradients]


def batch_pass(
    module: torch.nn.Module,
    batch: torch.Tensor,
    recorded: list[str],
    wanted: list[str],
    kinds: Mapping[str, list[int | None]],
) -> BatchPass:
    """The pass over ``batch``: ``recorded`` layers copied, and for each class kind in
    ``kinds`` (each input's class; None: its top prediction) the
    gradients of that logit at the ``wanted`` layers. No kind or no wanted layer: an
    inference-mode pass, no graph kept."""
    modules = dict(module.named_modules())
    names = list(dict.fromkeys([*recorded, *wanted]))
    missing = [name for name in names if name not in modules]
    if missing:
        raise ReportgenError(f"no layer named {missing[0]!r} in the model")
    with_gradients = bool(wanted) and bool(kinds)
    copies: dict[str, torch.Tensor] = {}
    kept: dict[str, torch.Tensor] = {}
    copy_set, keep_set = set(recorded), set(wanted) if with_gradients else set()

    def watch(name: str, _module: Any, _inputs: Any, output: Any) -> Any:
        if not isinstance(output, torch.Tensor):
            return None
        if name in copy_set:
            copies[name] = output.detach().to("cpu", torch.float32, copy=True)
        if name not in keep_set:
            return None
        if not output.requires_grad:
            # The graph's leaf: the backward pass stops here.
            output = output.detach().requires_grad_(True)
        kept[name] = output
        return output.clone()

    targets = [(name, modules[name]) for name in names]
    if not with_gradients:
        with ForwardHooks(targets, watch), torch.inference_mode():
            logits = module(batch)
        _require_seen(recorded, copies)
        return BatchPass(logits.detach().float().cpu(), copies, {}, {})
    with _parameters_frozen(module), ForwardHooks(targets, watch), torch.enable_grad():
        logits = module(batch.detach())
        _require_seen(recorded, copies)
        classes = _class_gradients(logits, kept, wanted, kinds)
    values = {name: kept[name].detach() for name in wanted if name in kept}
    return BatchPass(logits.detach().float().cpu(), copies, values, classes)


def _require_seen(names: list[str], seen: Mapping[str, Any]) -> None:
    not_seen = [name for name in names if name not in seen]
    if not_seen:
        raise ReportgenError(f"layer {not_seen[0]!r} produced no tensor during the forward pass")


def _class_gradients(
    logits: torch.Tensor,
    kept: dict[str, torch.Tensor],
    wanted: list[str],
    kinds: Mapping[str, list[int | None]],
) -> dict[str, ClassGradients]:
    """One backward pass per class kind, from the same graph (kept until the last)."""
    present = [name for name in wanted if name in kept]
    results: dict[str, ClassGradients] = {}
    for number, (kind, class_indices) in enumerate(kinds.items()):
        chosen = chosen_classes(logits, class_indices)
        scores = logits[torch.arange(len(chosen)), torch.tensor(chosen)]
        last = number == len(kinds) - 1
        if not present or not scores.requires_grad:
            grads: tuple[Any, ...] = (None,) * len(present)
        else:
            grads = torch.autograd.grad(
                scores.sum(), [kept[n] for n in present], retain_graph=not last, allow_unused=True
            )
        results[kind] = ClassGradients(
            chosen,
            scores.detach(),
            # A layer off the path to the logits has no gradient: not listed.
            {name: grad.detach() for name, grad in zip(present, grads) if grad is not None},
        )
    return results


def chosen_classes(logits: torch.Tensor, class_indices: list[int | None]) -> list[int]:
    """Each input's class: the one asked for, else its top prediction."""
    chosen = [int(logits[i].argmax()) if c is None else int(c) for i, c in enumerate(class_indices)]
    if any(not 0 <= c < logits.shape[1] for c in chosen):
        raise ReportgenError(
            f"--target-class is out of range: the model has {logits.shape[1]} classes"
        )
    return chosen


@contextlib.contextmanager
def _parameters_frozen(module: torch.nn.Module) -> Iterator[None]:
    """No parameter in the graph for one pass: no weight gradient is computed."""
    frozen = [p for p in module.parameters() if p.requires_grad]
    for parameter in frozen:
        parameter.requires_grad_(False)
    try:
        yield
    finally:
        for parameter in frozen:
            parameter.requires_grad_(True)


def contributions(values: torch.Tensor, gradients: torch.Tensor) -> torch.Tensor:
    """Per input and channel, the sum over positions of gradient x value (the first-order
    Taylor term of the class logit in that channel): [B, C] float32 on the CPU. A layer of
    units ([B, C]) has one position per channel."""
    batch, channels = values.shape[0], values.shape[1]
    products = (gradients.float() * values.float()).reshape(batch, channels, -1)
    return products.sum(dim=2, dtype=torch.float64).float().cpu()
