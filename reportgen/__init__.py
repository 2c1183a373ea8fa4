"""reportgen: activations, filters and overlays of torchvision CNNs as a static HTML report."""

__version__ = "0.1.0"

__all__ = ["__version__"]
