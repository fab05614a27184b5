"""Class-parallel condensation: which classes each rank condenses (the seed's distribute_class)."""

from __future__ import annotations

import numpy as np


def distribute_classes(nclass: int, world_size: int, rank: int) -> list[int]:
    """Contiguous, balanced blocks of ``range(nclass)``: rank r gets block r (maybe empty)."""
    return [int(c) for c in np.array_split(np.arange(nclass), world_size)[rank]]
