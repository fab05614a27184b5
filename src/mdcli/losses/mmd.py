"""Distribution matching by mean embeddings: MMD with a linear kernel.

``MMD^2 = || mean_i x_i - mean_j y_j ||^2``, the alternative ``condense.dis_metrics: MMD`` to
NCFM's characteristic-function loss.
"""

from __future__ import annotations

import torch


def mmd_loss(real: torch.Tensor, syn: torch.Tensor) -> torch.Tensor:
    """Squared distance of the mean embeddings of ``real (n, d)`` and ``syn (m, d)``.

    Returns
    -------
    Tensor ()
        ``sum_d (mean(real)_d - mean(syn)_d)^2``.
    """
    return (real.mean(0) - syn.mean(0)).pow(2).sum()
