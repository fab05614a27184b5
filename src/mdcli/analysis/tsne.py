"""t-SNE embeddings through openTSNE, with MMPretrain's option names.

The path: features wider than ``pca_dims`` are first reduced by PCA (fitted on the map's own
data); affinities use perplexity-based nearest neighbours (exact for up to
``EXACT_NEIGHBORS_MAX`` points, approximate beyond); the embedding starts from the data's
principal components (``init="pca"``) and is optimised with FFT-interpolated gradients (grid
cells 2 units wide) from ``FFT_MIN_SAMPLES`` points on, Barnes-Hut below that (faster for small
sets) and for 3 components (which the FFT scheme does not support). Up to ``MAX_THREADS``
cores are used from ``PARALLEL_MIN_SAMPLES`` points on, one below (small problems lose more to
thread synchronisation, badly so on a busy machine, than they gain).

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

from mdcli.errors import InputError
from mdcli.storage.atomic import atomic_path

log = logging.getLogger("mdcli")

EARLY_EXAGGERATION_ITER = 250
EXACT_NEIGHBORS_MAX = 30_000
FFT_MIN_SAMPLES = 10_000
FFT_INTS_IN_INTERVAL = 2
PARALLEL_MIN_SAMPLES = 5_000
MAX_THREADS = 8
CHECK_EVERY = 50
INITS = ("pca", "random", "spectral")


@dataclass(frozen=True)
class TSNEParams:
    """t-SNE settings; field names follow MMPretrain's ``vis_tsne.py`` options."""

    n_components: int = 2
    perplexity: float = 30.0
    early_exaggeration: float = 12.0
    learning_rate: float | str = "auto"
    n_iter: int = 750
    n_iter_without_progress: int = 300
    init: str = "pca"
    pca_dims: int = 50
    seed: int = 0
    n_jobs: int | None = None


def max_perplexity(n_samples: int) -> float:
    """The largest perplexity ``n_samples`` points support (3 x perplexity neighbours each)."""
    return (n_samples - 1) / 3.0


def check_params(params: TSNEParams, n_samples: int | None = None) -> None:
    """Raise :class:`InputError` naming the option for any setting t-SNE cannot run with."""
    if params.n_components not in (2, 3):
        raise InputError(f"--n-components {params.n_components}: expected 2 or 3")
    if not params.perplexity > 0:
        raise InputError(f"--perplexity {params.perplexity}: expected a positive number")
    if not params.early_exaggeration >= 1:
        raise InputError(f"--early-exaggeration {params.early_exaggeration}: expected >= 1")
    if params.learning_rate != "auto" and not (
            isinstance(params.learning_rate, (int, float)) and params.learning_rate > 0):
        raise InputError(f"--learning-rate {params.learning_rate}: expected 'auto' or a "
                         f"positive number")
    if params.n_iter <= EARLY_EXAGGERATION_ITER:
        raise InputError(f"--n-iter {params.n_iter}: expected more than "
                         f"{EARLY_EXAGGERATION_ITER} (the first {EARLY_EXAGGERATION_ITER} "
                         f"steps are the early-exaggeration phase)")
    if params.n_iter_without_progress < CHECK_EVERY:
        raise InputError(f"--n-iter-without-progress {params.n_iter_without_progress}: "
                         f"expected at least {CHECK_EVERY}")
    if params.init not in INITS:
        raise InputError(f"--init {params.init!r}: expected one of {', '.join(INITS)}")
    if params.pca_dims < params.n_components:
        raise InputError(f"pca_dims {params.pca_dims}: expected at least n_components")
    if n_samples is not None:
        if n_samples < 4:
            raise InputError(f"t-SNE needs at least 4 samples, got {n_samples}")
        if params.perplexity > max_perplexity(n_samples):
            raise InputError(
                f"--perplexity {params.perplexity:g} is too large for {n_samples} samples: "
                f"expected at most {math.floor(max_perplexity(n_samples))} ((N - 1) / 3); "
                f"lower --perplexity or use more samples")


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
    """A fitted t-SNE map: optional PCA reducer plus the optimised openTSNE embedding."""

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
    """Fit a t-SNE map to ``features`` ``[N, D]`` (options checked first)."""
    features = np.asarray(features, dtype=np.float32)
    if features.ndim != 2:
        raise InputError(f"t-SNE input has shape {features.shape}, expected [N, D]")
    check_params(params, features.shape[0])
    n, dim = features.shape
    pca = None
    data = features
    if dim > params.pca_dims and n > params.pca_dims:
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
        negative_gradient_method=_gradient_method(params, n), random_state=params.seed,
        ints_in_interval=FFT_INTS_IN_INTERVAL)
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
