"""One forward pass and, where something needs them, the gradients of chosen class
logits at chosen layers: what Grad-CAM and the channel contributions are made from.

Every recorded or wanted layer's output is copied (float32, on the CPU) inside its
forward hook (the hook owner: ``reportgen.nn.hooks``), before an in-place op after it
(ReLU) can change it: the statistics, the maps and the contributions are made from these
copies. No parameter takes part in the graph (its ``requires_grad`` is off during the
pass), and the input does not either: the first wanted output becomes the graph's leaf
(handed on as a copy, so that an in-place op after it changes the copy), and the
backward pass computes only the gradients between the logits and that layer, no weight
gradient. Every later wanted output keeps its place in the graph and carries a tensor
hook, which autograd calls with the gradient of the value the layer gave (the value
before any in-place op, as PyTorch documents for hooks registered before one): no copy
of it goes into the graph. One backward pass (``torch.autograd.grad``) per class kind
reads the gradients at every wanted layer at once.

A layer whose contributions are asked for (``attributed``) has them summed in its hook,
as its gradient arrives: the pass keeps [B, C] numbers of it, not a gradient the size of
its output, unless the layer is also ``wanted``.
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
    # layer -> d score / d output, float32 on the CPU, for the wanted layers; a layer off
    # the path to the logits is absent
    gradients: dict[str, torch.Tensor]
    # layer -> [B, C] contributions (``contributions``), for the attributed layers; a
    # layer off the path to the logits is absent
    contributions: dict[str, torch.Tensor]


@dataclass
class BatchPass:
    """What one pass over a batch gives: the logits (on the CPU), each recorded layer's
    output and each wanted layer's (float32, on the CPU: the same tensor where a layer is
    both) and the gradients of every class kind asked for."""

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
    attributed: list[str] | tuple[str, ...] = (),
) -> BatchPass:
    """The pass over ``batch``: ``recorded`` layers copied, and for each class kind in
    ``kinds`` (each input's class; None: its top prediction) the gradients of that logit
    at the ``wanted`` layers and the contributions to it at the ``attributed`` ones. No
    kind, or no wanted and no attributed layer: an inference-mode pass, no graph kept."""
    modules = dict(module.named_modules())
    names = list(dict.fromkeys([*recorded, *wanted, *attributed]))
    missing = [name for name in names if name not in modules]
    if missing:
        raise ReportgenError(f"no layer named {missing[0]!r} in the model")
    with_gradients = bool(wanted or attributed) and bool(kinds)
    keep_set = set(wanted) | set(attributed) if with_gradients else set()
    copies: dict[str, torch.Tensor] = {}
    graph = _GradientTaps(set(wanted), set(attributed), copies)

    def watch(name: str, _module: Any, _inputs: Any, output: Any) -> Any:
        if not isinstance(output, torch.Tensor):
            return None
        copies[name] = output.detach().to("cpu", torch.float32, copy=True)
        return graph.tap(name, output) if name in keep_set else None

    targets = [(name, modules[name]) for name in names]
    if not with_gradients:
        with ForwardHooks(targets, watch), torch.inference_mode():
            logits = module(batch)
        _require_seen(recorded, copies)
        return BatchPass(logits.detach().float().cpu(), {n: copies[n] for n in recorded}, {}, {})
    with _parameters_frozen(module), ForwardHooks(targets, watch), torch.enable_grad():
        logits = module(batch.detach())
        _require_seen(recorded, copies)
        classes = {
            kind: graph.class_gradients(logits, class_indices, last=number == len(kinds) - 1)
            for number, (kind, class_indices) in enumerate(kinds.items())
        }
    values = {name: copies[name] for name in wanted if name in graph.seen}
    return BatchPass(
        logits.detach().float().cpu(), {n: copies[n] for n in recorded}, values, classes
    )


class _GradientTaps:
    """The wanted and attributed layers' places in one pass's graph, and the backward
    passes over it: a leaf where the graph starts, a tensor hook everywhere else.
    ``values``: each layer's float32 copy, what its contributions are made from."""

    def __init__(
        self, wanted: set[str], attributed: set[str], values: Mapping[str, torch.Tensor]
    ) -> None:
        self.leaves: dict[str, torch.Tensor] = {}
        self.seen: list[str] = []
        self._wanted, self._attributed, self._values = wanted, attributed, values
        self._caught: dict[str, torch.Tensor] = {}
        self._summed: dict[str, torch.Tensor] = {}

    def tap(self, name: str, output: torch.Tensor) -> torch.Tensor | None:
        """Called in the layer's forward hook: what the rest of the network gets."""
        self.seen.append(name)
        if not output.requires_grad:
            # The graph's leaf: the backward pass stops here. The network goes on with a
            # copy: an in-place op after the layer must not change a leaf autograd needs.
            leaf = output.detach().requires_grad_(True)
            self.leaves[name] = leaf
            return leaf.clone()
        output.register_hook(lambda grad: self._catch(name, grad))
        return None

    def _catch(self, name: str, grad: torch.Tensor) -> None:
        grad = grad.detach().to("cpu", torch.float32)
        if name in self._wanted:
            self._caught[name] = grad
        if name in self._attributed:
            self._summed[name] = contributions(self._values[name], grad)

    def class_gradients(
        self, logits: torch.Tensor, class_indices: list[int | None], last: bool
    ) -> ClassGradients:
        """One backward pass for one class kind; ``last``: the graph is freed after it."""
        chosen = chosen_classes(logits, class_indices)
        scores = logits[torch.arange(len(chosen)), torch.tensor(chosen)]
        self._caught, self._summed = {}, {}
        if self.leaves and scores.requires_grad:
            leaves = list(self.leaves)
            grads = torch.autograd.grad(
                scores.sum(),
                [self.leaves[n] for n in leaves],
                retain_graph=not last,
                allow_unused=True,
            )
            for name, grad in zip(leaves, grads):
                if grad is not None:
                    self._catch(name, grad)
        # A layer off the path to the logits has no gradient: not listed.
        gradients = {name: self._caught[name] for name in self.seen if name in self._caught}
        summed = {name: self._summed[name] for name in self.seen if name in self._summed}
        return ClassGradients(chosen, scores.detach(), gradients, summed)


def _require_seen(names: list[str], seen: Mapping[str, Any]) -> None:
    not_seen = [name for name in names if name not in seen]
    if not_seen:
        raise ReportgenError(f"layer {not_seen[0]!r} produced no tensor during the forward pass")


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
    return products.sum(dim=2).cpu()
