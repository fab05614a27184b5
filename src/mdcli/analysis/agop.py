"""AGOP, neural feature matrix (NFM) and the H / G / M matrices of linear layers, batched.

For a linear layer ``z = W h (+ b)`` inside a network with outputs ``f`` (C logits) and a
per-sample loss ``l(f, y)``, over N samples:

- ``H    = E[h h^T]``                                   (representation matrix)
- ``G    = E[g g^T]``, ``g = -dl/dh``                     (gradient matrix)
- ``M    = W^T W``                                      (neural feature matrix, NFM)
- ``AGOP = E[sum_c (df_c/dh)^T (df_c/dh)]``             (average gradient outer product)

all ``(d_in, d_in)``. One forward pass records every layer's input ``h``; one backward pass
batched over the C output directions (``is_grads_batched=True``) gives ``J_c = df_c/dh`` for
every sample and every layer at once. The loss gradient needs no pass of its own: ``l``
depends on the sample's logits only, so ``g = -dl/dh = sum_c (-dl/df_c) J_c``, a combination
of the same rows with the weights ``-dl/df`` (from a backward of the summed loss through the
loss alone). Outer products are matrix products (``X^T X``, wide ones from their upper block
triangle) accumulated and returned in the model's dtype. For a narrowing layer
(``d_out < d_in``, e.g. the output layer), and for the first layer when that is cheaper, they
are taken of the gradients with respect to ``z = W h`` instead:
``AGOP = W^T K W`` with ``K = E[sum_c dz_c dz_c^T]`` (likewise ``G``); ``K`` is kept
(:class:`ZSpace`), so that ``AGOP^1/2`` is a ``d_out``-sized eigenproblem
(:func:`sqrt_moments`).

A convolution ``z_l = W p_l + b`` (``W`` the (out, in*kh*kw) unfolded filters, ``p_l`` the
input patch at output position ``l``) is analysed as a linear layer over patches: ``h`` are
the patches, sums run over samples *and* positions (expectations over samples), ``M = W^T W``
of the unfolded filters, and the patch AGOP is ``E[sum_l sum_c (df_c/dp_l)^T (df_c/dp_l)]``
with ``df_c/dp_l = W^T df_c/dz_l`` (always taken in z space). The centred AGOP subtracts
``sum_c E[J_c]^T E[J_c]``, the Jacobian's mean (for a convolution ``L sum_c m_c^T m_c``,
``m_c`` the mean over samples and the ``L`` positions, so it stays positive semi-definite).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from mdcli.errors import InputError
from mdcli.losses.classification import LossName, per_sample_loss

SIMILARITIES = ("agop_vs_nfm", "sqrt_agop_vs_nfm", "centred_agop_vs_nfm",
                "sqrt_centred_agop_vs_nfm", "g_vs_h", "g_vs_m", "h_vs_m")
Layer = nn.Linear | nn.Conv2d


@dataclass
class ZSpace:
    """A layer's AGOP in ``z = W h`` space: ``AGOP = weight^T agop weight`` and
    ``E[J_c] = jac_mean @ weight``, with ``weight`` (d_out, d_in), ``agop`` (d_out, d_out) and
    ``jac_mean`` (C, d_out)."""

    weight: torch.Tensor
    agop: torch.Tensor
    jac_mean: torch.Tensor


@dataclass
class LayerStats:
    """The ``(d_in, d_in)`` matrices of one layer over ``n_samples``; ``jac_mean`` (C, d_in)
    is ``E[J_c]`` (for the centred AGOP, ``agop - jac_mean^T jac_mean``). ``z``, where the
    AGOP was taken in z space, is its factored form (it must describe ``agop``: replace both
    or neither)."""

    H: torch.Tensor
    G: torch.Tensor
    M: torch.Tensor
    agop: torch.Tensor
    n_samples: int
    jac_mean: torch.Tensor | None = None
    z: ZSpace | None = None

    @property
    def centred_agop(self) -> torch.Tensor:
        if self.jac_mean is None:
            return self.agop
        return self.agop - self.jac_mean.T @ self.jac_mean


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    """``<A, B>_F / (|A|_F |B|_F)`` in float64; NaN when either matrix is zero."""
    a, b = a.double().flatten(), b.double().flatten()
    norm = a.norm() * b.norm()
    return float("nan") if norm == 0 else float(a @ b / norm)


def pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    """The centred cosine: Pearson correlation of the matrices' entries."""
    a, b = a.double().flatten(), b.double().flatten()
    return cosine(a - a.mean(), b - b.mean())


def sqrt_psd(a: torch.Tensor) -> torch.Tensor:
    """Square root of a symmetric positive semi-definite matrix (eigenvalues clamped at 0).

    Computed in float64 on one thread: on CPU, torch's multi-threaded ``eigh`` of a few
    hundred rows is 2-100x slower than the single-threaded one (worst on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        values, vectors = torch.linalg.eigh(a.double())
    finally:
        torch.set_num_threads(threads)
    return (vectors * values.clamp_min(0).sqrt()) @ vectors.T


def nfm(weight: torch.Tensor, init: torch.Tensor | None = None) -> torch.Tensor:
    """``W^T W`` (or ``(W - W_0)^T (W - W_0)`` with ``init``), shape (d_in, d_in)."""
    w = weight.detach().flatten(1)  # a convolution's filters unfolded: (out, in*kh*kw)
    if init is not None:
        w = w - init.detach().to(w.device, w.dtype).flatten(1)
    return _gram(w)


def layer_similarities(stats: LayerStats) -> dict[str, float]:
    """Cosines (and ``pearson_`` centred variants) of AGOP vs NFM, AGOP^1/2 vs NFM, G vs H,
    G vs M and H vs M, all from one Gram matrix of the five flattened matrices (float64)."""
    names = ("agop", "sqrt_agop", "cagop", "sqrt_cagop", "G", "H", "M")
    centred = stats.centred_agop.double()
    mats = [stats.agop.double(), sqrt_psd(stats.agop), centred, sqrt_psd(centred),
            stats.G.double(), stats.H.double(), stats.M.double()]
    mats = torch.stack(mats).flatten(1)
    pairs = {"agop_vs_nfm": ("agop", "M"), "sqrt_agop_vs_nfm": ("sqrt_agop", "M"),
             "centred_agop_vs_nfm": ("cagop", "M"),
             "sqrt_centred_agop_vs_nfm": ("sqrt_cagop", "M"),
             "g_vs_h": ("G", "H"), "g_vs_m": ("G", "M"), "h_vs_m": ("H", "M")}
    out = {}
    for prefix, rows in (("", mats), ("pearson_", mats - mats.mean(1, keepdim=True))):
        gram = (rows @ rows.T).tolist()
        for name, (a, b) in pairs.items():
            i, j = names.index(a), names.index(b)
            norm = (gram[i][i] * gram[j][j]) ** 0.5
            out[prefix + name] = gram[i][j] / norm if norm > 0 else float("nan")
    return out


def feature_layers(model: nn.Module) -> list[Layer]:
    """The layers analysed: ``nn.Linear`` and ``nn.Conv2d`` modules in registration order
    (for mdcli's MLPs and ConvNets, forward order)."""
    return [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]


def layer_dims(layer: Layer) -> tuple[int, int]:
    """``(d_in, d_out)``: a convolution's patch size ``in*kh*kw`` and its channels."""
    if isinstance(layer, nn.Conv2d):
        return layer.weight[0].numel(), layer.out_channels
    return layer.in_features, layer.out_features


def init_baseline(weight: torch.Tensor, init: torch.Tensor) -> float:
    """Pearson(NFM(W - W0), NFM(W0)): how much of the NFM's structure the initial weights
    already explain."""
    return pearson(nfm(weight, init), nfm(init))


def resolve_layers(model: nn.Module, layers: Sequence[Layer | int] | None) -> list[Layer]:
    """Layers from modules or indices into :func:`feature_layers` (None: all)."""
    linears = feature_layers(model)
    if layers is None:
        return linears
    out = []
    for layer in layers:
        if isinstance(layer, (nn.Linear, nn.Conv2d)):
            if isinstance(layer, nn.Conv2d) and layer.groups != 1:
                raise InputError(f"layer {layer}: grouped convolutions are not supported")
            out.append(layer)
        elif isinstance(layer, int) and -len(linears) <= layer < len(linears):
            out.append(linears[layer])
        else:
            raise InputError(f"layer {layer!r}: the model has {len(linears)} linear/conv "
                             f"layers (indices 0-{len(linears) - 1})")
    return out


def z_space(model: nn.Module, modules: list[Layer]) -> list[bool]:
    """Per layer, whether AGOP and G are cheaper from gradients w.r.t. ``z = W h``.

    Per sample and direction, the outer product costs ``d_in^2`` in h space and ``d_out^2`` in
    z space. The backward pass must reach ``h`` for every layer above the first selected one
    anyway; for the first one, z space also saves the backward through ``W`` (``d_in d_out``).
    """
    order = {id(m): k for k, m in enumerate(feature_layers(model))}
    first = min(order[id(m)] for m in modules)
    out = []
    for m in modules:
        d_in, d_out = layer_dims(m)
        out.append(isinstance(m, nn.Conv2d) or d_out ** 2 < d_in ** 2 + (
            d_in * d_out if order[id(m)] == first else 0))
    return out


SPLIT_GRAM = 256  # from this width on, X^T X is formed in column strips of this width


def _add_gram(acc: torch.Tensor, rows: torch.Tensor, alpha: float, first: bool,
              right: torch.Tensor | None = None) -> None:
    """``acc (+)= alpha * rows^T right`` (``right`` defaults to ``rows``), for a symmetric
    result: wide ones fill only the strips ``[s:s+b, s:]`` of the upper block triangle (about
    ``(k+1)/2k`` of the flops for ``k`` strips), :func:`_mirror` copies the rest at the end."""
    beta = 0.0 if first else 1.0
    right = rows if right is None else right
    d = rows.shape[1]
    if d < SPLIT_GRAM:
        acc.addmm_(rows.T, right, beta=beta, alpha=alpha)
        return
    for s in range(0, d, SPLIT_GRAM):
        e = s + SPLIT_GRAM
        acc[s:e, s:].addmm_(rows[:, s:e].T, right[:, s:], beta=beta, alpha=alpha)


def _mirror(acc: torch.Tensor) -> torch.Tensor:
    d = acc.shape[0]
    if d >= SPLIT_GRAM:
        for s in range(0, d - SPLIT_GRAM, SPLIT_GRAM):
            e = s + SPLIT_GRAM
            acc[e:, s:e] = acc[s:e, e:].T
    return acc


def _gram(rows: torch.Tensor, right: torch.Tensor | None = None) -> torch.Tensor:
    """``rows^T right`` (default ``rows^T rows``), known to be symmetric, as a new matrix."""
    d = rows.shape[1]
    acc = torch.empty(d, d, dtype=rows.dtype, device=rows.device)
    _add_gram(acc, rows, 1.0, first=True, right=right)
    return _mirror(acc)


class _InputRecorder:
    """Forward hooks that keep the input ``h`` and output ``z`` of each watched layer."""

    def __init__(self, layers: list[Layer]) -> None:
        self.inputs: dict[int, list[tuple[torch.Tensor, torch.Tensor]]] = {}
        self.handles = [layer.register_forward_hook(self._hook(i))
                        for i, layer in enumerate(layers)]
        self.count = len(layers)

    def _hook(self, index: int):
        def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
            self.inputs.setdefault(index, []).append((args[0], output))
        return hook

    def take(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        calls = [len(self.inputs.get(i, [])) for i in range(self.count)]
        if any(c != 1 for c in calls):
            bad = next(i for i, c in enumerate(calls) if c != 1)
            raise InputError(f"layer {bad}: called {calls[bad]} times in one forward pass, "
                             f"expected exactly once")
        out = [self.inputs[i][0] for i in range(self.count)]
        self.inputs.clear()
        return out

    def close(self) -> None:
        for handle in self.handles:
            handle.remove()


def _rows(layer: Layer, h: torch.Tensor, grad: torch.Tensor, g: torch.Tensor
          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rows of H, of the Jacobians, of g, and the per-sample Jacobian sums (C, B, d) of one
    layer from its input ``h``, the batched Jacobian ``grad`` (C, B, ...) and ``g`` (B, ...)."""
    b = h.shape[0]
    if isinstance(layer, nn.Conv2d):
        patches = F.unfold(h.detach(), layer.kernel_size, layer.dilation, layer.padding,
                           layer.stride)  # (B, d_in, L)
        rows_h = patches.transpose(1, 2).reshape(-1, patches.shape[1])
        grad = grad.flatten(3).transpose(2, 3)  # (C, B, L, out)
        per_sample = grad.mean(2) * grad.shape[2] ** 0.5  # sqrt(L) m: L m^T m below
        return (rows_h, grad.reshape(-1, grad.shape[-1]),
                g.flatten(2).transpose(1, 2).reshape(-1, grad.shape[-1]), per_sample)
    return h.detach().reshape(b, -1), grad.reshape(-1, grad.shape[-1]), g, grad


def layer_statistics(model: nn.Module, layers: Sequence[Layer | int] | None,
                     inputs: torch.Tensor, targets: torch.Tensor,
                     loss: LossName = "cross_entropy", batch_size: int = 1024,
                     device: str | torch.device | None = None) -> list[LayerStats]:
    """H, G, M and AGOP of each layer in ``layers`` over all ``inputs``.

    Parameters
    ----------
    model : nn.Module
        Maps ``inputs`` (N, ...) to logits (N, C); evaluated in eval mode (restored after)
        and moved to ``device``. It must not modify a layer's output in place.
    layers : sequence of nn.Linear / nn.Conv2d or int, or None
        Linear / Conv2d modules of ``model``, or indices into :func:`feature_layers`; None: all.
    inputs, targets : Tensor
        Samples (N, ...) and integer labels (N,) for the loss of ``G``.
    loss : {"cross_entropy", "mse"}
        Per-sample loss whose negative input-gradient is ``g``.
    batch_size : int
        Samples per pass (memory: about ``C * batch_size * sum(d_in)`` floats).
    device : str or torch.device, optional
        Where to compute (default: the model's device).

    Returns
    -------
    list of LayerStats
        One per layer, matrices of shape (d_in, d_in) in the model's dtype, on the CPU.
    """
    if len(inputs) != len(targets) or len(inputs) == 0:
        raise InputError(f"inputs ({len(inputs)}) and targets ({len(targets)}) must be "
                         f"non-empty and of equal length")
    params = list(model.parameters())
    device = torch.device(device) if device is not None else params[0].device
    dtype = params[0].dtype
    model.to(device)
    modules = resolve_layers(model, layers)
    zspace = z_space(model, modules)
    sums: dict[str, list[torch.Tensor]] = {"H": [], "G": [], "agop": [], "jac_mean": []}
    n = len(inputs)
    recorder = _InputRecorder(modules)
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(inputs), batch_size):
            x = inputs[start:start + batch_size].to(device, dtype).requires_grad_(True)
            y = targets[start:start + batch_size].to(device)
            logits = model(x)
            records = recorder.take()
            hs = [h for h, _ in records]
            # where cheaper, take gradients w.r.t. z = W h and form AGOP = W^T K W below
            wrt = [z if zspace[i] else h for i, (h, z) in enumerate(records)]
            detached = logits.detach().requires_grad_(True)
            (dloss,) = torch.autograd.grad(per_sample_loss(loss, detached, y).sum(), detached)
            classes = logits.shape[1]
            # direction c gives J_c = df_c/dh of every sample
            directions = torch.eye(classes, dtype=dtype, device=device)[:, None, :]
            grads = torch.autograd.grad(logits, wrt, directions.expand(-1, len(x), -1),
                                        is_grads_batched=True)
            for i, (h, grad) in enumerate(zip(hs, grads, strict=True)):  # grad: (C, B, ...)
                # g = -dl/dh = sum_c (-dl/df_c) J_c, per sample
                g = torch.einsum("bc,cb...->b...", -dloss, grad)
                h, jac, g, per_sample = _rows(modules[i], h, grad, g)
                batch_mean = per_sample.sum(1) / n
                if start == 0:
                    sums["jac_mean"].append(batch_mean)
                else:
                    sums["jac_mean"][i] += batch_mean
                for key, rows in (("H", h), ("G", g), ("agop", jac)):
                    if start == 0:
                        d = rows.shape[1]
                        sums[key].append(torch.empty(d, d, dtype=dtype, device=device))
                    # E[x x^T]: the 1/n is folded into the product
                    _add_gram(sums[key][i], rows, 1 / n, first=start == 0)
    finally:
        recorder.close()
        model.train(was_training)
    results = []
    for i, m in enumerate(modules):
        stats = {k: _mirror(sums[k][i]) for k in ("H", "G", "agop")}
        stats["jac_mean"] = sums["jac_mean"][i]
        z = None
        if zspace[i]:
            w = m.weight.detach().flatten(1)
            z = ZSpace(w.cpu(), stats["agop"].cpu(), stats["jac_mean"].cpu())
            stats.update(G=_gram(w, stats["G"] @ w), agop=_gram(w, stats["agop"] @ w),
                         jac_mean=stats["jac_mean"] @ w)
        results.append(LayerStats(**{k: v.cpu() for k, v in stats.items()},
                                  M=nfm(m.weight).cpu(), n_samples=n, z=z))
    return results
