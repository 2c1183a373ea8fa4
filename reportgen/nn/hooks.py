"""The one owner of forward hooks: every module that watches a forward pass goes through it.

Modelled on pytorch-grad-cam's ``ActivationsAndGradients``: one object holds the
handles, registers them when its ``with`` block opens and removes every one when it
closes, also when the block raises. Callers say which modules to watch and what to do
when one of them has run: ``hook(name, module, inputs, output)``; what it returns (not
None) replaces the module's output, as with ``register_forward_hook``.

Gradients are not taken here: Grad-CAM keeps a tensor hook on the layer's output (a
full backward module hook breaks when an in-place ReLU follows the layer).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterable, Iterator, Sequence
from types import TracebackType
from typing import Any

import torch
from torch.utils.hooks import RemovableHandle

# hook(name, module, inputs, output) -> a replacement output, or None to keep it.
ForwardHook = Callable[[str, torch.nn.Module, tuple[Any, ...], Any], Any]


class ForwardHooks:
    """Forward hooks on named modules, owned by this object for one ``with`` block.

    Hooks are registered in the order of ``targets`` on enter and all removed on exit,
    whatever happened in between. Owners nest: an inner one removes only its own hooks.
    One owner is entered once at a time.
    """

    def __init__(self, targets: Iterable[tuple[str, torch.nn.Module]], hook: ForwardHook) -> None:
        self.targets = list(targets)
        self.hook = hook
        self._handles: list[RemovableHandle] = []
        self._active = False

    @property
    def active(self) -> bool:
        """True between enter and exit."""
        return self._active

    def __enter__(self) -> ForwardHooks:
        if self._active:
            raise RuntimeError("these forward hooks are already registered")
        try:
            for name, module in self.targets:
                self._handles.append(
                    module.register_forward_hook(functools.partial(self.hook, name))
                )
        except BaseException:
            self.release()
            raise
        self._active = True
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def release(self) -> None:
        """Remove every hook this owner registered (safe to call more than once)."""
        handles, self._handles = self._handles, []
        self._active = False
        for handle in handles:
            handle.remove()


@contextlib.contextmanager
def dry_pass_mode(module: torch.nn.Module) -> Iterator[None]:
    """Eval mode and no gradients for a dummy forward pass; the mode is restored after."""
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        module.train(was_training)


def modules_that_run(
    module: torch.nn.Module,
    size: int | Sequence[int],
    device: Any = "cpu",
    kind: type[torch.nn.Module] | tuple[type[torch.nn.Module], ...] = torch.nn.Module,
) -> list[str]:
    """Names of the submodules of type ``kind`` that run in one dry forward pass (eval
    mode, no gradients, one zero image of ``size``: a side, or (height, width) as a crop
    size is given), in the order their forward ends. A module that runs more than once
    is listed at its last run."""
    sides = [int(size)] if isinstance(size, int) else [int(v) for v in size]
    height, width = sides[0], sides[-1]
    targets = [(n, m) for n, m in module.named_modules() if n and isinstance(m, kind)]
    fired: list[str] = []

    def note(name: str, _module: torch.nn.Module, _inputs: Any, _output: Any) -> None:
        if name in fired:
            fired.remove(name)
        fired.append(name)

    with ForwardHooks(targets, note), dry_pass_mode(module):
        module(torch.zeros(1, 3, height, width, device=device))
    return fired
