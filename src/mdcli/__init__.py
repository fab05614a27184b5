"""mdcli: multimodal diffusion distillation, t-SNE/alignment checks, NCFM condensation, AGOP."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mdcli")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"
