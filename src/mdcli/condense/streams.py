"""Random streams keyed by ``(seed, purpose, iteration, class)``.

Every random draw of a condensation comes from a generator named by what it is for, so a
class condensed on any rank of a ``torchrun`` job sees the numbers it would see in one process.
"""

from __future__ import annotations

import numpy as np
import torch

PURPOSES = {"init": 1, "iteration": 2, "real": 3, "subset": 4, "sampling_net": 5, "augment": 6,
            "evaluation": 7, "eval_train": 8}


def stream(seed: int, purpose: str, *keys: int) -> torch.Generator:
    """A CPU generator seeded from ``(seed, purpose, *keys)`` (``seed`` may be any integer)."""
    entropy = [seed % 2**63, PURPOSES[purpose], *(int(k) for k in keys)]
    state = np.random.SeedSequence(entropy).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


EVAL_SEED_OFFSET = 2**32


def evaluation_seed(label: int) -> int:
    """The torch seed of evaluation network ``label``: from its own stream and at least
    ``2**32``, so it never equals an extractor's seed (its index, ``< num_premodel``)."""
    state = np.random.SeedSequence([label % 2**63, PURPOSES["evaluation"]]).generate_state(
        2, dtype=np.uint32)
    return EVAL_SEED_OFFSET + (int(state[0]) << 31 | int(state[1]) >> 1)
