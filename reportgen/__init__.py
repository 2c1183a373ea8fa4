"""reportgen: activations, filters and overlays of torchvision CNNs as a static HTML report."""

from reportgen.version import __version__

__all__ = ["__version__", "analyze", "build_report"]


def analyze(*args: object, **kwargs: object) -> dict[str, object]:
    """See :func:`reportgen.api.analyze` (imported lazily: torch loads only when used)."""
    from reportgen.api import analyze as _analyze

    return _analyze(*args, **kwargs)  # type: ignore[arg-type]


def build_report(*args: object, **kwargs: object) -> object:
    """See :func:`reportgen.api.build_report`."""
    from reportgen.api import build_report as _build_report

    return _build_report(*args, **kwargs)  # type: ignore[arg-type]
