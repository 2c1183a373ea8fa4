"""The parts the cache keys of a model's results are made of, defined once.

A per-input result (``compute.cached.model_key``) and a layer's feature visualisations
(``compute.featurevis.unit_key``) are keyed by ``code_parts()`` and ``model_parts()``
and then by what is their own (the options that change them, the layer and channels); a
Dask worker computes for the client only when its ``code_key()`` is the client's
(``compute.dask_engine``): the workers' results are cached under the client's keys.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reportgen.nn.models import LoadedModel


def code_parts() -> list[Any]:
    """The code that computes: reportgen's code fingerprint (its files and the versions
    of the libraries that compute or encode) and the torch that runs it."""
    import torch

    from reportgen.results.store import code_fingerprint

    return [code_fingerprint(), torch.__version__]


def code_key() -> str:
    """``code_parts()`` hashed: equal on two machines that compute alike."""
    from reportgen.results.store import digest

    return digest("code", code_parts())


def model_parts(model: LoadedModel) -> list[Any]:
    """The model as it computes: its name, its weights and their file's identity (a
    checkpoint replaced in place is other weights), its preprocessing and its device."""
    from reportgen.results.store import weights_file_identity

    weights, prep = model.weights, model.preprocessing
    describe = getattr(weights, "describe", None)
    return [
        model.name,
        describe() if callable(describe) else str(weights),
        weights_file_identity(weights),
        prep.describe(),
        [list(prep.mean), list(prep.std), list(prep.resize_size), list(prep.crop_size)],
        str(getattr(prep, "interpolation", "")),
        str(model.device),
    ]
