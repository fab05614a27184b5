"""t-SNE settings and their checks, without importing openTSNE (so the CLI can use them).

A :class:`TSNEParams` is checked once, when it is made; :func:`check_sample_count` checks it
against the number of points to embed. Errors are :class:`ParamError`, worded with the
parameter's name (``n_iter 100: expected ...``); a command turns them into its flag's name
with :meth:`ParamError.for_flag`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from mdcli.errors import InputError

EARLY_EXAGGERATION_ITER = 250
CHECK_EVERY = 50
INITS = ("pca", "random", "spectral")


class ParamError(InputError):
    """A t-SNE setting that cannot run; ``parameter`` names the :class:`TSNEParams` field."""

    def __init__(self, parameter: str, detail: str) -> None:
        super().__init__(f"{parameter} {detail}")
        self.parameter, self.detail = parameter, detail

    def for_flag(self, flags: dict[str, str]) -> InputError:
        """The same error worded with the command-line flag of the parameter."""
        flag = flags.get(self.parameter, self.parameter)
        return InputError(f"{flag} {self.detail}")


@dataclass(frozen=True)
class TSNEParams:
    """t-SNE settings; field names follow MMPretrain's ``vis_tsne.py`` options.

    ``pca_dims``: reduce wider features to this many principal components first; ``None``
    (the default) embeds the features as they are (the PCA step loses neighbours,
    docs/tsne.md).
    """

    n_components: int = 2
    perplexity: float = 30.0
    early_exaggeration: float = 12.0
    learning_rate: float | str = "auto"
    n_iter: int = 750
    n_iter_without_progress: int = 300
    init: str = "pca"
    pca_dims: int | None = None
    seed: int = 0
    n_jobs: int | None = None

    def __post_init__(self) -> None:
        """Raise :class:`ParamError` naming the parameter for any setting t-SNE cannot run
        with."""
        if self.n_components not in (2, 3):
            raise ParamError("n_components", f"{self.n_components}: expected 2 or 3")
        if not self.perplexity > 0:
            raise ParamError("perplexity", f"{self.perplexity}: expected a positive number")
        if not self.early_exaggeration >= 1:
            raise ParamError("early_exaggeration", f"{self.early_exaggeration}: expected >= 1")
        if self.learning_rate != "auto" and not (
                isinstance(self.learning_rate, (int, float)) and self.learning_rate > 0):
            raise ParamError("learning_rate", f"{self.learning_rate}: expected 'auto' or a "
                                              f"positive number")
        if self.n_iter <= EARLY_EXAGGERATION_ITER:
            raise ParamError("n_iter", f"{self.n_iter}: expected more than "
                                       f"{EARLY_EXAGGERATION_ITER} (the first "
                                       f"{EARLY_EXAGGERATION_ITER} steps are the "
                                       f"early-exaggeration phase)")
        if self.n_iter_without_progress < CHECK_EVERY:
            raise ParamError("n_iter_without_progress", f"{self.n_iter_without_progress}: "
                                                        f"expected at least {CHECK_EVERY}")
        if self.init not in INITS:
            raise ParamError("init", f"{self.init!r}: expected one of {', '.join(INITS)}")
        if self.pca_dims is not None and self.pca_dims < self.n_components:
            raise ParamError("pca_dims", f"{self.pca_dims}: expected at least n_components")


def max_perplexity(n_samples: int) -> float:
    """The largest perplexity ``n_samples`` points support (3 x perplexity neighbours each)."""
    return (n_samples - 1) / 3.0


def check_sample_count(params: TSNEParams, n_samples: int) -> None:
    """Raise when ``n_samples`` points are too few to embed, or too few for the perplexity."""
    if n_samples < 4:
        raise InputError(f"t-SNE needs at least 4 samples, got {n_samples}")
    if params.perplexity > max_perplexity(n_samples):
        raise ParamError(
            "perplexity", f"{params.perplexity:g} is too large for {n_samples} samples: "
            f"expected at most {math.floor(max_perplexity(n_samples))} ((N - 1) / 3); "
            f"lower it or use more samples")
