"""Benchmark: mdcli's t-SNE path against scikit-learn's TSNE (what MMPretrain calls).

20,000 points in 128 dimensions (20 Gaussian blobs) are embedded by both in the same run;
prints both wall times, the speed ratio and trustworthiness (k=10) of both embeddings on the
same 3,000-point subsample. Target: mdcli >= 5x faster, trustworthiness within 0.01.

    PYTHONPATH=src python benchmarks/bench_tsne.py [--n 20000] [--dim 128] [--json out.json]

scikit-learn runs as MMPretrain's ``vis_tsne.py`` runs it: its own defaults apart from
``random_state`` (``n_jobs`` unset, so the neighbour search uses one core; its Barnes-Hut
gradient uses every core through OpenMP either way).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from sklearn.datasets import make_blobs
from sklearn.manifold import TSNE, trustworthiness

from mdcli.analysis.tsne import TSNEParams, embed

TARGET_SPEEDUP, TARGET_TRUST_GAP = 5.0, 0.01


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--centers", type=int, default=20)
    parser.add_argument("--subsample", type=int, default=3_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()

    features, _ = make_blobs(args.n, args.dim, centers=args.centers, random_state=args.seed)
    features = features.astype(np.float32)

    start = time.perf_counter()
    ours = embed(features, TSNEParams(seed=args.seed))
    mdcli_s = time.perf_counter() - start

    start = time.perf_counter()
    theirs = TSNE(random_state=args.seed).fit_transform(features)
    sklearn_s = time.perf_counter() - start

    subset = np.random.default_rng(args.seed).choice(args.n, args.subsample, replace=False)
    trust_mdcli = trustworthiness(features[subset], ours[subset], n_neighbors=10)
    trust_sklearn = trustworthiness(features[subset], theirs[subset], n_neighbors=10)
    result = {
        "n": args.n, "dim": args.dim, "mdcli_s": round(mdcli_s, 2),
        "sklearn_s": round(sklearn_s, 2), "speedup": round(sklearn_s / mdcli_s, 2),
        "trustworthiness_mdcli": round(float(trust_mdcli), 4),
        "trustworthiness_sklearn": round(float(trust_sklearn), 4),
    }
    result["passed"] = bool(result["speedup"] >= TARGET_SPEEDUP
                            and trust_mdcli >= trust_sklearn - TARGET_TRUST_GAP)
    print(f"mdcli t-SNE    {mdcli_s:8.1f} s   trustworthiness(k=10) {trust_mdcli:.4f}")
    print(f"sklearn TSNE   {sklearn_s:8.1f} s   trustworthiness(k=10) {trust_sklearn:.4f}")
    print(f"speed-up       {sklearn_s / mdcli_s:8.1f}x  (target >= {TARGET_SPEEDUP:g}x, "
          f"trustworthiness within {TARGET_TRUST_GAP})  {'PASS' if result['passed'] else 'FAIL'}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(result, handle, indent=2)
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
