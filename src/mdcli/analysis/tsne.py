"""t-SNE embeddings through openTSNE, with MMPretrain's option names.

The path: features are embedded as they are by default; with ``pca_dims`` set, wider features
are first reduced by PCA (fitted on the map's own data), which on 20,000 x 128 blobs keeps 98 %
of the variance but only a fifth of the 10-NN relations (docs/tsne.md); affinities use
perplexity-based nearest neighbours (exact for up to
``EXACT_NEIGHBORS_MAX`` points, approximate beyond); the embedding starts from the data's
principal components (``init="pca"``) and is optimised with FFT-interpolated gradients
(openTSNE's grid: one interval per unit of the embedding; a grid twice as coarse ran 1.3 x
faster but kept 0.88 x the 10-NN relations on 20,000 points) from ``FFT_MIN_SAMPLES`` points
on, Barnes-Hut below that (faster for small sets) and for 3 components (which the FFT scheme
does not support). Up to ``MAX_THREADS`` cores are used from ``PARALLEL_MIN_SAMPLES`` points on,
one below (small problems lose more to thread synchronisation, badly so on a busy machine,
than they gain).

``n_iter`` counts *all* gradient steps, as scikit-learn's ``TSNE`` (and so MMPretrain) did: the
first ``EARLY_EXAGGERATION_ITER`` steps are the early-exaggeration phase, the rest the normal
phase. ``n_iter_without_progress`` stops the normal phase when the KL divergence (checked every
50 steps) has not improved for that many steps.

A :class:`TSNEMap` can also place new points into an existing map (openTSNE's ``transform``):
fit on the teacher's features, transform the student's, and both share one coordinate frame.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import h5py
import numpy as np
from openTSNE import TSNEEmbedding, affinity, initialization
from sklearn.decomposition import PCA

from mdcli.analysis.tsne_params import (
    CHECK_EVERY,
    EARLY_EXAGGERATION_ITER,
    INITS,
    ParamError,
    TSNEParams,
    check_sample_count,
    max_perplexity,
)
from mdcli.errors import InputError
from mdcli.storage.atomic import atomic_path

__all__ = ["EARLY_EXAGGERATION_ITER", "INITS", "ParamError", "TSNEParams",
           "check_sample_count", "embed", "embed_pair", "max_perplexity", "save_embeddings"]

log = logging.getLogger("mdcli")

EXACT_NEIGHBORS_MAX = 30_000
FFT_MIN_SAMPLES = 10_000
PARALLEL_MIN_SAMPLES = 5_000
MAX_THREADS = 8


class _StopWithoutProgress:
    """openTSNE callback: stop when the KL divergence has not improved for ``patience`` steps."""

    def __init__(self, patience: int) -> None:
        self.patience = patience
        self.best = math.inf
        self.best_iter = 0

    def __call__(self, iteration: int, error: float, embedding: np.ndarray) -> bool:
        if error < self.best:
            self.best, self.best_iter = error, iteration
            return False
        if iteration - self.best_iter >= self.patience:
            log.info("t-SNE: no progress for %d steps, stopping at step %d",
                     iteration - self.best_iter, iteration)
            return True
        return False


@dataclass
class TSNEMap:
    """A fitted t-SNE map: optional PCA reducer plus the optimised openTSNE embedding.

    ``kl_divergence`` is measured on the data actually embedded: the input features, or their
    PCA reduction when ``pca`` is set (then it is not comparable with other tools' KL on the
    full features).
    """

    params: TSNEParams
    pca: PCA | None
    embedding: TSNEEmbedding
    kl_divergence: float

    @property
    def coords(self) -> np.ndarray:
        """A copy of the map's own points, ``[N, n_components]``."""
        return np.array(self.embedding)

    def reduce(self, features: np.ndarray) -> np.ndarray:
        """Features in the map's input space (PCA-reduced when the map was), ``[M, D']``."""
        features = np.asarray(features, dtype=np.float32)
        return self.pca.transform(features) if self.pca is not None else features

    def transform(self, features: np.ndarray) -> np.ndarray:
        """Place new points ``[M, D]`` into this map, ``[M, k]``.

        The map's points keep their layout but openTSNE first centres them (bounding-box
        midpoint at 0): read :attr:`coords` after the transform for the matching frame.
        """
        n_ref = self.coords.shape[0]
        perplexity = min(5.0, max_perplexity(n_ref))
        k = min(25, n_ref - 1)
        placed = self.embedding.transform(self.reduce(features), perplexity=perplexity, k=k)
        return np.asarray(placed)


def _threads(params: TSNEParams, n_samples: int) -> int:
    """``n_jobs`` as given, else up to ``MAX_THREADS`` cores from ``PARALLEL_MIN_SAMPLES``
    points on and one below: small problems lose more to thread synchronisation than they
    gain, and past about 8 threads openTSNE's per-step synchronisation outweighs the split
    work (measured on a 16-core node: 8 threads 16 s, 16 threads 21 s for 20,000 points)."""
    if params.n_jobs is not None:
        return params.n_jobs
    if n_samples < PARALLEL_MIN_SAMPLES:
        return 1
    return max(1, min(MAX_THREADS, len(os.sched_getaffinity(0))))


def _gradient_method(params: TSNEParams, n_samples: int) -> str:
    return "fft" if params.n_components == 2 and n_samples >= FFT_MIN_SAMPLES else "bh"


def fit_map(features: np.ndarray, params: TSNEParams) -> TSNEMap:
    """Fit a t-SNE map to ``features`` ``[N, D]`` (their count checked against ``params``)."""
    features = np.asarray(features, dtype=np.float32)
    if features.ndim != 2:
        raise InputError(f"t-SNE input has shape {features.shape}, expected [N, D]")
    check_sample_count(params, features.shape[0])
    n, dim = features.shape
    pca = None
    data = features
    if params.pca_dims is not None and dim > params.pca_dims and n > params.pca_dims:
        pca = PCA(params.pca_dims, random_state=params.seed).fit(features)
        data = pca.transform(features)
    method = "exact" if n <= EXACT_NEIGHBORS_MAX else "auto"
    threads = _threads(params, n)
    affinities = affinity.PerplexityBasedNN(
        data, perplexity=params.perplexity, method=method, n_jobs=threads,
        random_state=params.seed)
    if params.init == "pca":
        start = initialization.pca(data, params.n_components, random_state=params.seed)
    elif params.init == "spectral":
        start = initialization.spectral(affinities.P, params.n_components,
                                        random_state=params.seed)
    else:
        start = initialization.random(n, params.n_components, random_state=params.seed)
    embedding = TSNEEmbedding(
        start, affinities, learning_rate=params.learning_rate, n_jobs=threads,
        negative_gradient_method=_gradient_method(params, n), random_state=params.seed)
    embedding = embedding.optimize(EARLY_EXAGGERATION_ITER,
                                   exaggeration=params.early_exaggeration, momentum=0.5)
    embedding = embedding.optimize(
        params.n_iter - EARLY_EXAGGERATION_ITER, momentum=0.8,
        callbacks=_StopWithoutProgress(params.n_iter_without_progress),
        callbacks_every_iters=CHECK_EVERY)
    return TSNEMap(params, pca, embedding, float(embedding.kl_divergence))


def embed(features: np.ndarray, params: TSNEParams) -> np.ndarray:
    """t-SNE coordinates of ``features`` ``[N, D]`` -> ``[N, n_components]``."""
    return fit_map(features, params).coords


def embed_pair(teacher: np.ndarray, student: np.ndarray, params: TSNEParams,
               shared_map: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates of teacher ``[N, D]`` and student ``[M, D]`` features in one frame.

    By default both sets are embedded together. With ``shared_map`` the map is fitted on the
    teacher alone and the student is placed into it, so a student that drifts from the
    teacher's feature space lands away from the teacher's points.
    """
    if shared_map:
        tsne_map = fit_map(teacher, params)
        placed = tsne_map.transform(student)
        return tsne_map.coords, placed
    coords = embed(np.concatenate([teacher, student]), params)
    return coords[: len(teacher)], coords[len(teacher):]


def save_embeddings(path: str | Path, arrays: dict[str, np.ndarray], params: TSNEParams,
                    attrs: dict[str, str | int | float] | None = None) -> Path:
    """Write embeddings (``{"16/teacher": [N, k], ...}``, ``/`` makes groups) to HDF5 atomically,
    with the t-SNE settings as file attributes."""
    path = Path(path)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as handle:
            for key, value in {**asdict(params), **(attrs or {})}.items():
                if value is not None:
                    handle.attrs[key] = value
            for name, array in arrays.items():
                handle.create_dataset(name, data=np.asarray(array))
    return path
