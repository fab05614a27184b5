"""Teacher/student feature-alignment metrics, grades and diagnoses.

Every metric has the same shape, ``metric(teacher, student) -> float``, where ``teacher`` and
``student`` are ``[N, D]`` arrays and row ``n`` of each comes from the same input. Metrics run
on the original features, never on a 2-D embedding.

Distances are measured on features *standardised by the teacher's statistics*: both sets are
shifted by the teacher's per-dimension mean and divided by the teacher's per-dimension
standard deviation (dimensions where the teacher is constant are divided by 1). A distance is
therefore in units of teacher standard deviations and does not change when both models' features
are rescaled. It still grows with the dimension: two unrelated sets with the teacher's
distribution lie about ``sqrt(2 D)`` apart, so the seed's raw thresholds mean something
different at every width.

Grades (``grade``) therefore use only scale-free quantities (``THRESHOLDS``): the mean cosine,
the relative distance ``||t - s|| / ||t||`` on standardised, teacher-centred features (a student
equal to the teacher plus noise of ``e`` teacher standard deviations per dimension scores about
``e`` at any width) and the variance ratio, judged by how far it is from 1 in either direction
(``max(r, 1/r)``), since a collapsed student is as far off as a scattered one. The seed's grade
on the raw mean distance is kept as ``raw_grade`` (``RAW_THRESHOLDS``), labelled raw.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sklearn.neighbors import NearestNeighbors

from mdcli.errors import InputError

Metric = Callable[[np.ndarray, np.ndarray], float]

GRADES = ("poor", "good", "excellent")
THRESHOLDS = {  # width-free grading: cos greater than, the other two less than
    "excellent": {"cosine_similarity": 0.85, "relative_distance": 0.6,
                  "cluster_variance_ratio": 1.3},
    "good": {"cosine_similarity": 0.7, "relative_distance": 1.0,
             "cluster_variance_ratio": 2.0},
}
RAW_THRESHOLDS = {  # the seed's grading on the raw (width-dependent) mean distance
    "excellent": {"cosine_similarity": 0.85, "euclidean_distance": 1.5,
                  "cluster_variance_ratio": 1.3},
    "good": {"cosine_similarity": 0.7, "euclidean_distance": 3.0,
             "cluster_variance_ratio": 2.0},
}
LOW_COSINE, HIGH_RELATIVE_DISTANCE, SEPARATED_OVERLAP = 0.5, 1.0, 0.25
KNN_K = 10
_EPS = 1e-12


def check_pair(teacher: np.ndarray, student: np.ndarray, what: str = "features") -> None:
    """Raise :class:`InputError` unless ``teacher`` and ``student`` are paired ``[N, D]`` arrays."""
    for name, array in (("teacher", teacher), ("student", student)):
        if array.ndim != 2:
            raise InputError(f"{what}: {name} array has shape {array.shape}, expected [N, D]")
        if not np.all(np.isfinite(array)):
            raise InputError(f"{what}: {name} array holds NaN or infinite values")
    if teacher.shape != student.shape:
        raise InputError(f"{what}: teacher {teacher.shape} and student {student.shape} differ, "
                         f"expected paired arrays of the same shape [N, D]")
    if teacher.shape[0] < 2:
        raise InputError(f"{what}: {teacher.shape[0]} sample(s), expected at least 2")


def standardise(teacher: np.ndarray, student: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both sets shifted and scaled by the teacher's per-dimension mean and std, ``[N, D]`` each."""
    teacher = np.asarray(teacher, dtype=np.float64)
    mean = teacher.mean(axis=0)
    std = teacher.std(axis=0)
    std = np.where(std > _EPS, std, 1.0)
    return (teacher - mean) / std, (np.asarray(student, dtype=np.float64) - mean) / std


def paired_cosines(teacher: np.ndarray, student: np.ndarray) -> np.ndarray:
    """Cosine similarity of each row pair, ``[N]`` (a zero row gives 0)."""
    teacher = np.asarray(teacher, dtype=np.float64)
    student = np.asarray(student, dtype=np.float64)
    norms = np.linalg.norm(teacher, axis=1) * np.linalg.norm(student, axis=1)
    return np.einsum("nd,nd->n", teacher, student) / np.maximum(norms, _EPS)


def cosine_similarity(teacher: np.ndarray, student: np.ndarray) -> float:
    """Mean cosine similarity of paired rows of the raw features (1 = same directions)."""
    return float(paired_cosines(teacher, student).mean())


def paired_distances(teacher: np.ndarray, student: np.ndarray) -> np.ndarray:
    """Euclidean distance of each row pair on standardised features, ``[N]``."""
    t, s = standardise(teacher, student)
    return np.linalg.norm(t - s, axis=1)


def euclidean_distance(teacher: np.ndarray, student: np.ndarray) -> float:
    """Mean paired Euclidean distance on standardised features."""
    return float(paired_distances(teacher, student).mean())


def euclidean_distance_median(teacher: np.ndarray, student: np.ndarray) -> float:
    """Median paired Euclidean distance on standardised features."""
    return float(np.median(paired_distances(teacher, student)))


def relative_distance(teacher: np.ndarray, student: np.ndarray) -> float:
    """``sqrt(sum ||t - s||^2 / sum ||t||^2)`` on standardised, teacher-centred features.

    0 for a student equal to the teacher, about ``e`` for the teacher plus noise of ``e``
    teacher standard deviations per dimension, about ``sqrt(2)`` for an unrelated student with
    the teacher's distribution; it does not depend on the width.
    """
    t, s = standardise(teacher, student)
    return float(np.sqrt(np.sum((t - s) ** 2) / max(np.sum(t ** 2), _EPS)))


def nearest_distances(teacher: np.ndarray, student: np.ndarray) -> np.ndarray:
    """Distance from each teacher row to its nearest student row (standardised), ``[N]``."""
    t, s = standardise(teacher, student)
    dist, _ = NearestNeighbors(n_neighbors=1).fit(s).kneighbors(t)
    return dist[:, 0]


def nearest_distance(teacher: np.ndarray, student: np.ndarray) -> float:
    """Mean distance from a teacher feature to the nearest student feature (standardised)."""
    return float(nearest_distances(teacher, student).mean())


def centre_distances(teacher: np.ndarray, student: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's distance to its own set's centre (standardised), ``([N], [N])``."""
    t, s = standardise(teacher, student)
    return (np.linalg.norm(t - t.mean(axis=0), axis=1),
            np.linalg.norm(s - s.mean(axis=0), axis=1))


def cluster_variance_ratio(teacher: np.ndarray, student: np.ndarray) -> float:
    """Student spread / teacher spread: total variance around each set's own centre.

    On standardised features this is ``mean_d var(S_d) / var(T_d)``; a student scaled by ``a``
    gives ``a**2``, a shifted one 1.
    """
    t, s = standardise(teacher, student)
    teacher_var = np.sum(t.var(axis=0))
    return float(np.sum(s.var(axis=0)) / max(teacher_var, _EPS))


def knn_overlap(teacher: np.ndarray, student: np.ndarray, k: int = KNN_K) -> float:
    """How mixed the two sets are among nearest neighbours: 1 = indistinguishable, 0 = apart.

    The sets are pooled (standardised); for each of the ``2N`` points the share of its ``k``
    nearest other points that belong to the other set is averaged and divided by the share
    expected when both sets come from one distribution, ``N / (2N - 1)``; the result is capped
    at 1.
    """
    t, s = standardise(teacher, student)
    n = t.shape[0]
    pooled = np.concatenate([t, s])
    k = min(k, 2 * n - 1)
    _, idx = NearestNeighbors(n_neighbors=k + 1).fit(pooled).kneighbors(pooled)
    rows = np.arange(2 * n)[:, None]
    not_self = idx != rows
    # Keep the first k neighbours that are not the point itself (ties may put self later).
    keep = not_self & (np.cumsum(not_self, axis=1) <= k)
    other = (idx < n) != (rows < n)
    share = (other & keep).sum(axis=1) / k
    return float(min(1.0, share.mean() / (n / (2 * n - 1))))


def cka(teacher: np.ndarray, student: np.ndarray) -> float:
    """Linear centred kernel alignment (Kornblith et al., 2019), in [0, 1].

    ``||S_c^T T_c||_F^2 / (||T_c^T T_c||_F ||S_c^T S_c||_F)`` with column-centred features;
    invariant to shifts, isotropic scaling and rotations of either set.
    """
    t = np.asarray(teacher, dtype=np.float64)
    s = np.asarray(student, dtype=np.float64)
    t = t - t.mean(axis=0)
    s = s - s.mean(axis=0)
    cross = np.linalg.norm(s.T @ t) ** 2
    norm = np.linalg.norm(t.T @ t) * np.linalg.norm(s.T @ s)
    return float(cross / norm) if norm > _EPS else 0.0


def _debiased_dot(xty: float, rows_x: np.ndarray, rows_y: np.ndarray, n: int) -> float:
    """Unbiased HSIC (Song et al., 2012) of two centred linear kernels, up to ``1/(n(n-3))``."""
    return float(xty - n / (n - 2.0) * rows_x @ rows_y
                 + rows_x.sum() * rows_y.sum() / ((n - 1.0) * (n - 2.0)))


def cka_debiased(teacher: np.ndarray, student: np.ndarray) -> float:
    """Linear CKA with the unbiased HSIC estimator (Song et al., 2012; Nguyen et al., 2021).

    Linear CKA is inflated when there are fewer samples than dimensions (two unrelated
    ``50 x 512`` sets score about 0.9); this estimator is near 0 for unrelated sets and 1 for
    identical ones. It can be slightly negative. Computed in feature space, ``O(N D^2)``;
    needs at least 4 samples (0 otherwise).
    """
    t = np.asarray(teacher, dtype=np.float64)
    s = np.asarray(student, dtype=np.float64)
    n = t.shape[0]
    if n < 4:
        return 0.0
    t = t - t.mean(axis=0)
    s = s - s.mean(axis=0)
    rows_t, rows_s = np.einsum("nd,nd->n", t, t), np.einsum("nd,nd->n", s, s)
    cross = _debiased_dot(np.linalg.norm(s.T @ t) ** 2, rows_t, rows_s, n)
    norm_t = _debiased_dot(np.linalg.norm(t.T @ t) ** 2, rows_t, rows_t, n)
    norm_s = _debiased_dot(np.linalg.norm(s.T @ s) ** 2, rows_s, rows_s, n)
    norm = np.sqrt(max(norm_t, 0.0) * max(norm_s, 0.0))
    return float(cross / norm) if norm > _EPS else 0.0


def mutual_knn(teacher: np.ndarray, student: np.ndarray, k: int = KNN_K) -> float:
    """Mean share of each row's ``k`` nearest rows that teacher and student agree on, in [0, 1].

    Neighbours are found within each set separately (teacher rows among teacher rows, student
    rows among student rows), so it is invariant to any rescaling or rotation of either set.
    """
    t = np.asarray(teacher, dtype=np.float64)
    s = np.asarray(student, dtype=np.float64)
    n = t.shape[0]
    k = min(k, n - 1)
    rows = np.arange(n)[:, None]
    found = []
    for x, missing in ((t, -1), (s, -2)):
        _, idx = NearestNeighbors(n_neighbors=k + 1).fit(x).kneighbors(x)
        not_self = idx != rows
        keep = not_self & (np.cumsum(not_self, axis=1) <= k)
        found.append(np.where(keep, idx, missing))
    shared = (found[0][:, :, None] == found[1][:, None, :]).sum(axis=(1, 2))
    return float(shared.mean() / k)


METRICS: dict[str, Metric] = {
    "cosine_similarity": cosine_similarity,
    "euclidean_distance": euclidean_distance,
    "euclidean_distance_median": euclidean_distance_median,
    "relative_distance": relative_distance,
    "nearest_distance": nearest_distance,
    "cluster_variance_ratio": cluster_variance_ratio,
    "knn_overlap": knn_overlap,
    "cka": cka,
    "cka_debiased": cka_debiased,
    "mutual_knn": mutual_knn,
}


def _graded(metrics: dict[str, float], thresholds: dict, distance: str) -> str:
    ratio = metrics["cluster_variance_ratio"]
    spread = max(ratio, 1.0 / ratio) if ratio > 0 else float("inf")
    for name in ("excellent", "good"):
        bar = thresholds[name]
        if (metrics["cosine_similarity"] > bar["cosine_similarity"]
                and metrics[distance] < bar[distance]
                and spread < bar["cluster_variance_ratio"]):
            return name
    return "poor"


def grade(metrics: dict[str, float]) -> str:
    """``excellent``, ``good`` or ``poor`` by the width-free :data:`THRESHOLDS`."""
    return _graded(metrics, THRESHOLDS, "relative_distance")


def raw_grade(metrics: dict[str, float]) -> str:
    """The seed's grade on the raw mean distance (:data:`RAW_THRESHOLDS`); depends on width."""
    return _graded(metrics, RAW_THRESHOLDS, "euclidean_distance")


def diagnoses(metrics: dict[str, float]) -> list[str]:
    """The seed's problem diagnoses that apply to ``metrics`` (empty when none)."""
    found = []
    if metrics["cosine_similarity"] < LOW_COSINE:
        found.append(f"cosine similarity < {LOW_COSINE}: too little feature learning; "
                     f"raise the distillation (feature) loss weight")
    if metrics["relative_distance"] > HIGH_RELATIVE_DISTANCE:
        found.append(f"relative distance > {HIGH_RELATIVE_DISTANCE}: the student is further "
                     f"from the teacher than the teacher's own spread; check the loss weights")
    if metrics["knn_overlap"] < SEPARATED_OVERLAP:
        found.append(f"k-NN overlap < {SEPARATED_OVERLAP}: teacher and student form separate "
                     f"clusters; distillation is poor, adjust the training strategy")
    return found


@dataclass
class Alignment:
    """All metrics of one teacher/student feature set, with its grade and diagnoses."""

    metrics: dict[str, float]
    grade: str
    raw_grade: str
    diagnoses: list[str]
    n_samples: int
    dim: int

    def to_dict(self) -> dict:
        return {**self.metrics, "grade": self.grade, "raw_grade": self.raw_grade,
                "diagnoses": self.diagnoses, "n_samples": self.n_samples, "dim": self.dim}


def evaluate(teacher: np.ndarray, student: np.ndarray, what: str = "features") -> Alignment:
    """Every metric in :data:`METRICS` on one paired set, graded and diagnosed."""
    teacher = np.asarray(teacher, dtype=np.float64)
    student = np.asarray(student, dtype=np.float64)
    check_pair(teacher, student, what)
    metrics = {name: fn(teacher, student) for name, fn in METRICS.items()}
    return Alignment(metrics, grade(metrics), raw_grade(metrics), diagnoses(metrics),
                     *teacher.shape)


def worst_grade(grades: list[str]) -> str:
    """The lowest of several grades (the overall grade of a report)."""
    return min(grades, key=GRADES.index) if grades else "poor"


def meets(grade_name: str, bar: str) -> bool:
    """Whether ``grade_name`` is at least ``bar`` (``good`` or ``excellent``)."""
    return GRADES.index(grade_name) >= GRADES.index(bar)


REPORT_FORMAT, REPORT_VERSION = "mdcli-alignment", 2  # 2: width-free grade


@dataclass
class FeatureSet:
    """Paired teacher/student features of one layer or scale.

    ``teacher``/``student`` ``[N, D]`` (row n of each from the same input); ``variable``
    ``[N]`` optional integer ids into ``variable_names`` (e.g. the ERA5 variable of a row).
    """

    name: str
    teacher: np.ndarray
    student: np.ndarray
    variable: np.ndarray | None = None
    variable_names: tuple[str, ...] = ()
    available: int = 0  # rows the source held before any ``max_samples`` draw (0: unknown)

    def variable_subsets(self) -> list[tuple[str, np.ndarray]]:
        """``(variable name, row mask)`` for every variable present."""
        if self.variable is None:
            return []
        return [(name, self.variable == vid) for vid, name in enumerate(self.variable_names)
                if np.count_nonzero(self.variable == vid) >= 2]


def report(sets: list[FeatureSet]) -> dict:
    """The alignment report (what ``alignment.json`` holds) for several feature sets.

    ``{"format", "format_version", "grade", "sets": {name: {metrics..., "grade",
    "diagnoses", "n_samples", "dim", "variables": {variable: {...}}}},
    "per_variable_cosine": {variable: {set name: cosine}}}``; the overall grade is the worst
    grade of the sets (not of their per-variable subsets).
    """
    result: dict = {"format": REPORT_FORMAT, "format_version": REPORT_VERSION, "sets": {},
                    "per_variable_cosine": {}}
    for item in sets:
        entry = evaluate(item.teacher, item.student, what=f"feature set {item.name}").to_dict()
        entry["variables"] = {}
        for variable, mask in item.variable_subsets():
            sub = evaluate(item.teacher[mask], item.student[mask],
                           what=f"feature set {item.name}/{variable}").to_dict()
            entry["variables"][variable] = sub
            result["per_variable_cosine"].setdefault(variable, {})[item.name] = \
                sub["cosine_similarity"]
        result["sets"][item.name] = entry
    result["grade"] = worst_grade([entry["grade"] for entry in result["sets"].values()])
    return result


def compare(current: dict, baseline: dict) -> dict:
    """Per set and metric, ``current - baseline`` for the sets both reports hold."""
    change = {}
    for name, entry in current["sets"].items():
        if name in baseline["sets"]:
            change[name] = {key: entry[key] - baseline["sets"][name][key] for key in METRICS}
    return change


_TEXT_NAMES = {
    "cosine_similarity": "cosine similarity (mean, paired)",
    "euclidean_distance": "raw: euclidean distance (mean, standardised)",
    "euclidean_distance_median": "raw: euclidean distance (median, standardised)",
    "relative_distance": "relative distance ||t - s|| / ||t||",
    "nearest_distance": "teacher -> nearest student distance (mean)",
    "cluster_variance_ratio": "cluster variance ratio (student / teacher)",
    "knn_overlap": f"k-NN overlap (k={KNN_K}, 1 = mixed)",
    "cka": "linear CKA",
    "cka_debiased": "debiased linear CKA (unbiased HSIC)",
    "mutual_knn": f"mutual k-NN overlap (k={KNN_K}, within each set)",
}


def set_text(name: str, entry: dict) -> str:
    """Plain-text metrics of one set (``alignment_metrics_<name>.txt``)."""
    lines = [f"feature set: {name}", f"samples: {entry['n_samples']}   dim: {entry['dim']}", ""]
    lines += [f"{_TEXT_NAMES[key]:<46} {entry[key]:.4f}" for key in METRICS]
    lines += ["", f"grade: {entry['grade']}",
              f"raw grade (seed thresholds, depends on width): {entry['raw_grade']}"]
    lines += [f"diagnosis: {text}" for text in entry["diagnoses"]] or ["diagnosis: none"]
    if entry.get("variables"):
        lines += ["", "per variable:   " + "  ".join(f"{k:>8}" for k in
                                                    ("cosine", "distance", "varratio",
                                                     "overlap", "cka", "grade"))]
        for variable, sub in entry["variables"].items():
            values = [sub[k] for k in ("cosine_similarity", "euclidean_distance",
                                       "cluster_variance_ratio", "knn_overlap", "cka")]
            lines.append(f"  {variable:<13} " + "  ".join(f"{v:8.4f}" for v in values)
                         + f"  {sub['grade']:>8}")
    lines += ["", "thresholds: excellent cos > 0.85, relative distance < 0.6, variance ratio "
              "< 1.3; good cos > 0.7, relative distance < 1.0, variance ratio < 2.0 (ratio "
              "judged as max(r, 1/r))",
              "raw thresholds (seed): excellent cos > 0.85, distance < 1.5, variance ratio "
              "< 1.3; good cos > 0.7, distance < 3.0, variance ratio < 2.0"]
    return "\n".join(lines) + "\n"
