"""Recording layer outputs: forward hooks held by the hook owner (reportgen.nn.hooks),
one forward pass for all selected layers, outputs copied before anything can change them."""

from __future__ import annotations

from types import TracebackType
from typing import Any

import torch

from reportgen.errors import ReportgenError
from reportgen.nn.hooks import ForwardHooks


class ActivationRecorder:
    """Records the outputs of named layers during forward passes.

    Each output is copied inside the hook, before the next op runs: an in-place
    ReLU after a Conv2d would otherwise overwrite the recorded values.
    Hooks are removed on exit, also when the pass fails.
    """

    def __init__(self, model: torch.nn.Module, layer_names: list[str]) -> None:
        modules = dict(model.named_modules())
        missing = [name for name in layer_names if name not in modules]
        if missing:
            raise ReportgenError(f"no layer named {missing[0]!r} in the model")
        self.model = model
        self.layer_names = list(layer_names)
        self._modules = {name: modules[name] for name in layer_names}
        self._hooks = ForwardHooks(self._modules.items(), self._record)
        self.outputs: dict[str, torch.Tensor] = {}

    def __enter__(self) -> ActivationRecorder:
        self._hooks.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._hooks.__exit__(exc_type, exc, tb)
        self.outputs = {}

    def _record(self, name: str, _module: torch.nn.Module, _inputs: Any, output: Any) -> None:
        if isinstance(output, torch.Tensor):
            self.outputs[name] = output.detach().to("cpu", torch.float32, copy=True)

    def run(self, batch: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """One forward pass; returns the logits and each layer's recorded output."""
        if not self._hooks.active:
            raise RuntimeError("ActivationRecorder.run() outside its 'with' block")
        self.outputs = {}
        with torch.inference_mode():
            logits = self.model(batch)
        return logits.detach().float().cpu(), self.collect()

    def collect(self) -> dict[str, torch.Tensor]:
        """What the last forward pass recorded, made by ``run`` or by the caller (a
        Grad-CAM pass records the layers too, so one pass serves both)."""
        not_seen = [name for name in self.layer_names if name not in self.outputs]
        if not_seen:
            raise ReportgenError(
                f"layer {not_seen[0]!r} produced no tensor during the forward pass"
            )
        recorded, self.outputs = self.outputs, {}
        return recorded
