"""Model registry: torchvision classifiers by name, built with resolved weights,
with the transforms and category names their weights carry."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reportgen.errors import ReportgenError
from reportgen.nn.weights import (
    ResolvedWeights,
    _one_line,
    load_state_dict,
    model_weights_enum,
    resolve_weights,
)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def classification_models() -> list[str]:
    """Every classification model in torchvision's registry, sorted."""
    import torchvision
    from torchvision.models import list_models

    return sorted(list_models(module=torchvision.models))


def check_model_name(name: str) -> None:
    known = classification_models()
    if name not in known:
        from reportgen.nn.timm_names import timm_hint

        close = difflib.get_close_matches(name, known, n=4, cutoff=0.5)
        hint = f"; closest: {', '.join(close)}" if close else ""
        raise ReportgenError(
            f"unknown model {name!r}{hint}{timm_hint(name)} (see 'reportgen models' for "
            f"all {len(known)})"
        )


@dataclass(frozen=True)
class Preprocessing:
    """Resize, centre crop, normalise: the view the network sees, and its tensor.

    The view (after crop, before normalisation) is what overlays are drawn on.
    """

    resize_size: tuple[int, ...]
    crop_size: tuple[int, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    interpolation: Any  # torchvision InterpolationMode

    def view(self, image: Any, source: str = "an input") -> Any:
        """The cropped RGB picture (PIL) the network sees, before normalisation.

        Refused (ReportgenError naming ``source`` and its size) before resizing when the
        resized picture or the crop would have more than ``MAX_VIEW_PIXELS``."""
        from torchvision.transforms import functional as F

        from reportgen.inputs.files import check_view_size

        check_view_size(source, image.width, image.height, (self.resize_size, self.crop_size))
        resized = F.resize(image, list(self.resize_size), interpolation=self.interpolation)
        return F.center_crop(resized, list(self.crop_size))

    def tensor(self, view: Any) -> Any:
        """The normalised CHW float tensor for a view."""
        from torchvision.transforms import functional as F

        tensor = F.pil_to_tensor(view).float().div_(255.0)
        return F.normalize(tensor, list(self.mean), list(self.std))

    def describe(self) -> str:
        return (
            f"resize {'x'.join(map(str, self.resize_size))}, centre crop "
            f"{'x'.join(map(str, self.crop_size))}, normalise with ImageNet mean/std"
            if (self.mean, self.std) == (IMAGENET_MEAN, IMAGENET_STD)
            else f"resize {self.resize_size}, crop {self.crop_size}, mean {self.mean}, "
            f"std {self.std}"
        )


def preprocessing_from_transforms(transforms: Any) -> Preprocessing:
    """Read torchvision's ImageClassification preset into our own plain object."""
    return Preprocessing(
        resize_size=tuple(transforms.resize_size),
        crop_size=tuple(transforms.crop_size),
        mean=tuple(float(v) for v in transforms.mean),
        std=tuple(float(v) for v in transforms.std),
        interpolation=transforms.interpolation,
    )


def default_preprocessing() -> Preprocessing:
    from torchvision.transforms import InterpolationMode

    return Preprocessing((256,), (224,), IMAGENET_MEAN, IMAGENET_STD, InterpolationMode.BILINEAR)


@dataclass
class LoadedModel:
    id: str
    name: str
    module: Any  # torch.nn.Module, in eval mode, on its device
    weights: ResolvedWeights
    preprocessing: Preprocessing
    categories: list[str] | None
    device: Any
    notes: list[str] = field(default_factory=list)
    display_label: str = ""

    def label(self, index: int) -> str:
        if self.categories and 0 <= index < len(self.categories):
            return self.categories[index]
        return f"class {index}"


def select_device(choice: str) -> Any:
    import torch

    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cuda" and not torch.cuda.is_available():
        raise ReportgenError(
            "--device cuda was asked for, but this PyTorch sees no CUDA device; "
            "use --device cpu or --device auto"
        )
    return torch.device(choice)


def model_id(name: str, taken: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "model"
    candidate, n = base, 2
    while candidate in taken:
        candidate, n = f"{base}-{n}", n + 1
    return candidate


def is_custom(name: str) -> bool:
    """``package.module:factory`` names a user's own model factory."""
    return ":" in name


def build_custom_module(spec: str) -> Any:
    """Import ``package.module:factory`` and call it; it must return an nn.Module."""
    import importlib

    import torch

    module_name, _, attribute = spec.partition(":")
    if module_name == "timm":  # timm's models are -m timm/NAME, not factories of package timm
        from reportgen.nn.timm_names import timm_hint

        raise ReportgenError(
            f"model {spec!r} names a factory {attribute!r} of the package timm"
            f"{timm_hint(spec) or '; timm models are -m timm/NAME'}"
        )
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ReportgenError(f"cannot import {module_name!r} for model {spec!r}: {exc}") from exc
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise ReportgenError(f"{module_name!r} has no {attribute!r} (model {spec!r})")
        target = getattr(target, part)
    if not callable(target):
        raise ReportgenError(f"{spec!r} is not callable")
    built = target()
    if not isinstance(built, torch.nn.Module):
        raise ReportgenError(f"{spec!r} returned {type(built).__name__}, not a torch.nn.Module")
    return built


def custom_preprocessing(
    input_size: int | None, mean: tuple[float, ...], std: tuple[float, ...]
) -> Preprocessing:
    from torchvision.transforms import InterpolationMode

    crop = input_size or 224
    return Preprocessing(
        (round(crop * 256 / 224),),
        (crop,),
        tuple(mean) or IMAGENET_MEAN,
        tuple(std) or IMAGENET_STD,
        InterpolationMode.BILINEAR,
    )


def read_labels(path: str) -> list[str]:
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ReportgenError(f"cannot read --labels file {path!r}: {exc}") from exc
    return [line.strip() for line in lines if line.strip()]


@dataclass(frozen=True)
class CustomPreprocessing:
    """A custom model's view and class names (``--input-size``, ``--mean``, ``--std``,
    ``--labels``): a factory carries none of its own."""

    input_size: int | None = None
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    labels_file: str | None = None


def load_custom_model(
    spec: str,
    weights_spec: str,
    *,
    seed: int,
    device: Any,
    model_id_: str,
    custom: CustomPreprocessing | None = None,
) -> LoadedModel:
    """A user's model from ``package.module:factory``, with optional state-dict file."""
    import torch

    custom = custom or CustomPreprocessing()
    torch.manual_seed(seed)
    module = build_custom_module(spec)
    notes = []
    if weights_spec.lower() in ("imagenet", "none", "default"):
        resolved = ResolvedWeights("none", "as built by the factory", None)
        notes.append(f"custom model: weights as {spec} builds them (seed {seed})")
    else:
        path = Path(weights_spec)
        if not path.is_file():
            raise ReportgenError(
                f"weights {weights_spec!r} for custom model {spec!r} is not a file"
            )
        resolved = ResolvedWeights("file", path.name, path)
        apply_state_dict(module, load_state_dict(path), path)
    categories = read_labels(custom.labels_file) if custom.labels_file else None
    module.eval().to(device)
    return LoadedModel(
        model_id_,
        spec,
        module,
        resolved,
        custom_preprocessing(custom.input_size, custom.mean, custom.std),
        categories,
        device,
        notes,
    )


def load_model(
    name: str,
    weights_spec: str,
    *,
    weights_dir: str | None,
    offline: bool,
    seed: int,
    device: Any,
    model_id_: str,
) -> LoadedModel:
    """Build torchvision model ``name`` with its weights, ready for inference."""
    import torch

    check_model_name(name)
    resolved = resolve_weights(name, weights_spec, weights_dir, offline, seed)
    torch.manual_seed(seed)  # makes --weights none reproducible
    member = resolved.enum_member
    state = load_state_dict(resolved.path) if resolved.path is not None else None
    module = build_module(name, member, state, resolved.path)
    notes = [resolved.note] if resolved.note else []
    if member is not None:
        preprocessing = preprocessing_from_transforms(member.transforms())
        categories = list(member.meta.get("categories") or []) or None
    else:
        reference = reference_weights(model_weights_enum(name), module)
        preprocessing = (
            preprocessing_from_transforms(reference.transforms())
            if reference is not None
            else default_preprocessing()
        )
        categories = _architecture_categories(reference, module)
        if categories:
            notes.append("class names are ImageNet's, as for torchvision's weights of this model")
    module.eval().to(device)
    return LoadedModel(model_id_, name, module, resolved, preprocessing, categories, device, notes)


# Builders that warn when init_weights is left unset, and then use True: said outright,
# the network is the same and nothing is printed.
_INIT_WEIGHTS_WARNS = ("googlenet", "inception_v3")


def build_module(
    name: str,
    member: Any = None,
    state: dict[str, Any] | None = None,
    path: Any = None,
) -> Any:
    """torchvision's network ``name``, as torchvision builds it.

    With a weights member (and its checkpoint, read by ``load_state_dict``) the
    member's own builder runs: it shapes the network for those weights (a ViT's input
    size, GoogLeNet and Inception's ``transform_input`` and dropped auxiliary heads)
    and adapts the checkpoint's keys (DenseNet's old names). Its download is answered
    with ``state``, so nothing is fetched and no file is read twice. Without a member:
    the default architecture, random, then ``state`` (a user's file) loaded strictly.
    """
    from torchvision.models import get_model

    if member is None:
        extra = {"init_weights": True} if name in _INIT_WEIGHTS_WARNS else {}
        module = get_model(name, weights=None, **extra)
        if state is not None:
            apply_state_dict(module, state, path)
        return module
    if state is None:
        raise ReportgenError(f"weights {member.name} for {name!r} have no checkpoint")
    try:
        with _checkpoint_served(member.url, state):
            return get_model(name, weights=member)
    except RuntimeError as exc:  # load_state_dict(strict=True) of the builder
        raise ReportgenError(
            f"weights file {path} does not fit {name} as torchvision builds it for "
            f"{member.name}: {_one_line(str(exc), 240)}"
        ) from exc


@contextmanager
def _checkpoint_served(url: str, state: dict[str, Any]) -> Iterator[None]:
    """While a torchvision builder runs, its checkpoint download returns ``state``."""
    import torchvision.models._api as api

    if not hasattr(api, "load_state_dict_from_url"):  # pragma: no cover - torchvision moved it
        raise ReportgenError(
            "this torchvision loads its weights in a way reportgen does not know; "
            "use --weights PATH with a state-dict file"
        )
    original = api.load_state_dict_from_url

    def serve(requested: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        if requested != url:
            raise ReportgenError(f"torchvision asked for {requested}, reportgen holds {url}")
        return dict(state)  # builders may rename keys in place (DenseNet)

    api.load_state_dict_from_url = serve
    try:
        yield
    finally:
        api.load_state_dict_from_url = original


def reference_weights(enum: Any, module: Any) -> Any:
    """The torchvision weights whose preprocessing and class names a network without
    weights borrows: DEFAULT, unless the network takes one input size only (ViT) and
    DEFAULT's crop is another (vit_h_14: DEFAULT crops 518, the built network takes 224);
    then a member of that size, or None (the plain preprocessing, crop 224)."""
    if enum is None:
        return None
    size = getattr(module, "image_size", None)
    if not isinstance(size, int):
        return enum.DEFAULT
    for candidate in (enum.DEFAULT, *enum):
        if list(candidate.transforms().crop_size) == [size]:
            return candidate
    return None


def _architecture_categories(reference: Any, module: Any) -> list[str] | None:
    if reference is None:
        return None
    categories = list(reference.meta.get("categories") or [])
    outputs = _output_count(module)
    return categories if categories and outputs == len(categories) else None


def _output_count(module: Any) -> int | None:
    import torch

    last = None
    for sub in module.modules():
        if isinstance(sub, torch.nn.Linear):
            last = sub.out_features
        elif isinstance(sub, torch.nn.Conv2d):
            last = sub.out_channels
    return last


def apply_state_dict(module: Any, state: dict[str, Any], path: Any) -> None:
    """Load ``state`` strictly; a mismatch names a few missing and unexpected keys."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong_shape = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    if missing or unexpected or wrong_shape:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys ({', '.join(missing[:3])}...)")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys ({', '.join(unexpected[:3])}...)")
        if wrong_shape:
            parts.append(f"{len(wrong_shape)} keys of another shape ({', '.join(wrong_shape[:3])})")
        raise ReportgenError(
            f"weights file {path} does not fit this architecture: {'; '.join(parts)}"
        )
    module.load_state_dict(state, strict=True)
