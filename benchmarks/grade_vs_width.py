"""Grade (width-free) and raw seed grade of a teacher plus relative noise, by width and noise.

    PYTHONPATH=src python benchmarks/grade_vs_width.py [--n 300]

The student is the teacher plus Gaussian noise of ``noise`` teacher standard deviations per
dimension; each cell is ``grade / raw grade`` (E excellent, G good, P poor) and the relative
distance.
"""

from __future__ import annotations

import argparse

import numpy as np

from mdcli.analysis import alignment

WIDTHS = (8, 16, 64, 128, 384, 512, 1024)
NOISES = (0.1, 0.3, 0.5, 0.75, 1.0, 1.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300, help="rows per set")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print("| noise | " + " | ".join(f"D={w}" for w in WIDTHS) + " |")
    print("|---|" + "---|" * len(WIDTHS))
    for noise in NOISES:
        cells = []
        for width in WIDTHS:
            scale = rng.uniform(0.5, 3.0, size=width)
            teacher = rng.normal(size=(args.n, width)) * scale
            student = teacher + noise * scale * rng.normal(size=teacher.shape)
            result = alignment.evaluate(teacher, student)
            cells.append(f"{result.grade[0].upper()} / {result.raw_grade[0].upper()} "
                         f"({result.metrics['relative_distance']:.2f})")
        print(f"| {noise} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
