"""The student's causal loss: InfoNCE across the batch between causal features and targets.

For anchors ``a_i`` (the embedded causal features of window ``i``, one per fusion site and
ERA5 variable) and targets ``t_j`` (the embedded clean target frames of window ``j``, see
:class:`mdcli.models.mi_heads.MIProjection`), with cosine similarities and temperature
``tau``,

``loss = mean_i -log( exp(cos(a_i, t_i) / tau) / sum_j exp(cos(a_i, t_j) / tau) )``:

the positive is the same window's target, the negatives the other windows' targets. It is
the InfoNCE bound ``I(causal features; target) >= log B - loss`` (van den Oord et al. 2018):
features that carry nothing about the target keep it at ``log B`` on unseen windows whatever
the heads learn, since any head that scores one target higher than the others for every
anchor scores it so for the wrong windows as well.

Differences from the seed's ``ConditionalMutualInfoLoss``: the seed pushes the cosine of
each window's causal projection to its own target projection towards 1 (BCE of
``(cos + 1) / 2``), with no negatives, so heads that map everything to one direction solve it
on any features (measured in mdcli: 1.55 -> 0.003 in 50 steps on target-independent random
features). Its non-causal term (cosine to the target towards -1, plus a margin) is dropped:
the non-causal features are detached, so it trains nothing but its own head, which solves it
by mapping everything to the negated direction. The seed sums its loss over the variables
of its "32" site; mdcli averages over both sites and the variables. The negatives are the
windows of the (per-process) batch; with a batch of one the loss is 0.

Caveat: the student sees ``x_noisy``, which at low noise nearly is the target, so part of
what the loss rewards is information the input already carries (as in the seed); it is an
estimate of ``I(causal features; target)``, not conditional on the noisy input.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def info_nce(anchors: torch.Tensor, targets: torch.Tensor, temperature: float = 0.1
             ) -> torch.Tensor:
    """InfoNCE of anchors against the batch's targets (positive: the same index).

    Parameters
    ----------
    anchors : ``[..., B, D]``; every leading index is one set of ``B`` anchors.
    targets : ``[B, D]``.
    temperature : ``tau``, dividing the cosine similarities.

    Returns
    -------
    The mean over the leading indices and the ``B`` anchors (a scalar).
    """
    batch = targets.shape[0]
    if anchors.shape[-2] != batch:
        raise ValueError(f"info_nce: {anchors.shape[-2]} anchors per set, {batch} targets")
    logits = F.normalize(anchors, dim=-1) @ F.normalize(targets, dim=-1).T / temperature
    labels = torch.arange(batch, device=targets.device).repeat(logits[..., 0, 0].numel())
    return F.cross_entropy(logits.reshape(-1, batch), labels)
