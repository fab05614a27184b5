"""Benchmark: mdcli's t-SNE against openTSNE and scikit-learn, in one run on the same data.

Gaussian blobs (default 20,000 points in 128 dimensions, 20 centres) are embedded by mdcli (its
defaults: no PCA step), mdcli with the former 50-component PCA step, openTSNE's ``TSNE`` and
scikit-learn's ``TSNE`` (what MMPretrain calls). For each it prints the wall time, the time
relative to openTSNE and the 10-NN preservation: for a fixed subsample of points, the share of
each point's 10 nearest neighbours in the input that are also among its 10 nearest in the
embedding (neighbours searched among all points). Targets: mdcli's preservation within 10 % of
openTSNE's at no more than 1.2x its time.

    PYTHONPATH=src python benchmarks/bench_tsne.py [--n 20000] [--dim 128] [--jobs 1]
        [--skip-sklearn] [--json out.json]

Every library gets the same ``--jobs`` threads.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import numpy as np
import openTSNE
from sklearn.datasets import make_blobs
from sklearn.manifold import TSNE
from sklearn.neighbors import NearestNeighbors

from mdcli.analysis.tsne import TSNEParams, embed

K = 10
TARGET_PRESERVATION, TARGET_TIME = 0.9, 1.2


def knn_preservation(features: np.ndarray, coords: np.ndarray, subset: np.ndarray,
                     k: int = K) -> float:
    """Mean share of each ``subset`` point's ``k`` input neighbours kept in the embedding."""
    found = []
    for x in (features, coords):
        _, idx = NearestNeighbors(n_neighbors=k + 1).fit(x).kneighbors(x[subset])
        found.append(idx[:, 1:])
    shared = (found[0][:, :, None] == found[1][:, None, :]).sum(axis=(1, 2))
    return float(shared.mean() / k)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--centers", type=int, default=20)
    parser.add_argument("--subsample", type=int, default=2_000)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-sklearn", action="store_true")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()

    features, _ = make_blobs(args.n, args.dim, centers=args.centers, random_state=args.seed)
    features = features.astype(np.float32)
    subset = np.random.default_rng(args.seed).choice(args.n, min(args.subsample, args.n),
                                                     replace=False)
    params = TSNEParams(seed=args.seed, n_jobs=args.jobs)
    runs = {
        "mdcli": lambda: embed(features, params),
        "mdcli_pca50": lambda: embed(features, dataclasses.replace(params, pca_dims=50)),
        "openTSNE": lambda: np.asarray(openTSNE.TSNE(
            n_jobs=args.jobs, random_state=args.seed).fit(features)),
    }
    if not args.skip_sklearn:
        runs["scikit-learn"] = lambda: TSNE(random_state=args.seed,
                                            n_jobs=args.jobs).fit_transform(features)
    result: dict = {"n": args.n, "dim": args.dim, "jobs": args.jobs, "k": K, "runs": {}}
    for name, run in runs.items():
        start = time.perf_counter()
        coords = run()
        seconds = time.perf_counter() - start
        result["runs"][name] = {"seconds": round(seconds, 2),
                                "knn_preservation": round(knn_preservation(
                                    features, coords, subset), 4)}
    base = result["runs"]["openTSNE"]
    print(f"{args.n} x {args.dim} blobs, {args.jobs} thread(s), {K}-NN preservation on "
          f"{len(subset)} points")
    for name, entry in result["runs"].items():
        entry["time_vs_openTSNE"] = round(entry["seconds"] / base["seconds"], 2)
        print(f"{name:<13} {entry['seconds']:8.1f} s  {entry['time_vs_openTSNE']:5.2f}x "
              f"openTSNE's time  {K}-NN preservation {entry['knn_preservation']:.4f}")
    ours = result["runs"]["mdcli"]
    result["passed"] = bool(ours["knn_preservation"] >= TARGET_PRESERVATION
                            * base["knn_preservation"]
                            and ours["time_vs_openTSNE"] <= TARGET_TIME)
    print(f"target: preservation >= {TARGET_PRESERVATION:g} x openTSNE's at <= "
          f"{TARGET_TIME:g}x its time  {'PASS' if result['passed'] else 'FAIL'}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(result, handle, indent=2)
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
