"""NCFM's characteristic-function discrepancy between real and synthetic features.

For a frequency ``t`` the empirical characteristic function of features ``x_1..x_n`` is
``phi(t) = mean_j exp(i t.x_j)``. The discrepancy of real (``phi_r``) and synthetic (``phi_s``)
features at ``t`` splits into an amplitude term ``(|phi_r| - |phi_s|)^2`` and a phase term
``2 (|phi_r||phi_s| - Re phi_r Re phi_s - Im phi_r Im phi_s)``; the loss is
``mean_t sqrt(alpha * amp + beta * phase)``. With ``alpha == beta`` the sum under the root is
``alpha |phi_r - phi_s|^2``.
"""

from __future__ import annotations

import torch

PHASE_FLOOR = 1e-12


def characteristic_function(x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Real and imaginary parts of ``phi(t) = mean_j exp(i t.x_j)``.

    Parameters
    ----------
    x : Tensor (n, d)
        Samples.
    t : Tensor (k, d)
        Frequencies.

    Returns
    -------
    real, imag : Tensor (k,)
    """
    angles = x @ t.T  # (n, k)
    return torch.cos(angles).mean(0), torch.sin(angles).mean(0)


def cf_loss(real: torch.Tensor, syn: torch.Tensor, t: torch.Tensor, alpha: float = 0.5,
            beta: float = 0.5) -> torch.Tensor:
    """NCFM's CF loss between ``real (n, d)`` and ``syn (m, d)`` features at ``t (k, d)``.

    Features are used as given (normalising them is the caller's step) and no scale is applied
    (the reference's factor 300 is ``condense.loss_scale``, applied by the caller).

    Returns
    -------
    Tensor ()
        ``mean_t sqrt(alpha * amp(t) + beta * phase(t))``, the phase term clamped at 1e-12.
    """
    re_r, im_r = characteristic_function(real, t)
    re_s, im_s = characteristic_function(syn, t)
    norm_r = torch.sqrt(re_r * re_r + im_r * im_r)
    norm_s = torch.sqrt(re_s * re_s + im_s * im_s)
    amp = (norm_r - norm_s) ** 2
    phase = (2 * (norm_r * norm_s - re_r * re_s - im_r * im_s)).clamp(min=PHASE_FLOOR)
    return torch.sqrt(alpha * amp + beta * phase).mean()
