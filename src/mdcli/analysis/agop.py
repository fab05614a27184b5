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

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
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


@contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one thread inside: the similarities are float64 ``eigh``, Cholesky and
    many small, memory-bound operations, which on CPU run 2-40x slower multi-threaded when
    another job keeps a core busy (each OpenMP region waits on a descheduled thread; torch's
    multi-threaded ``eigh`` of a few hundred rows is slower even on an idle machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _eigh(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    with one_thread():
        return torch.linalg.eigh(a)


def sqrt_psd(a: torch.Tensor) -> torch.Tensor:
    """Square root of a symmetric positive semi-definite matrix (eigenvalues clamped at 0),
    in float64."""
    values, vectors = _eigh(a.double())
    return (vectors * values.clamp_min(0).sqrt()) @ vectors.T


def nfm(weight: torch.Tensor, init: torch.Tensor | None = None) -> torch.Tensor:
    """``W^T W`` (or ``(W - W_0)^T (W - W_0)`` with ``init``), shape (d_in, d_in)."""
    w = weight.detach().flatten(1)  # a convolution's filters unfolded: (out, in*kh*kw)
    if init is not None:
        w = w - init.detach().to(w.device, w.dtype).flatten(1)
    return _gram(w)


@dataclass
class Moments:
    """Entry moments of same-shaped matrices with ``n`` entries, float64: ``sums[a]``,
    ``dots[a, b] = <A, B>_F`` and ``centred[a, b]``, the same of the entries less their mean
    (``dots[a, a]``: the squared norm)."""

    n: int
    sums: dict[str, float]
    dots: dict[tuple[str, str], float]
    centred: dict[tuple[str, str], float]

    def cosine(self, a: str, b: str, centred: bool = False) -> float:
        """Cosine of the entries of A and B, or (``centred``) their Pearson correlation;
        NaN when either is zero (constant)."""
        dots = self.centred if centred else self.dots
        norm = dots[a, a] * dots[b, b]
        return dots[a, b] / norm ** 0.5 if norm > 0 else float("nan")

    def add(self, name: str, total: float, square: float, inner: dict[str, float]) -> None:
        """Add a matrix known by its sum, squared norm and inner products with others:
        ``<A - a, B - b> = <A, B> - sum(A) sum(B) / n``."""
        self.sums[name] = total
        self.dots[name, name] = square
        self.centred[name, name] = square - total * total / self.n
        for other, value in inner.items():
            self.dots[name, other] = self.dots[other, name] = value
            shifted = value - total * self.sums[other] / self.n
            self.centred[name, other] = self.centred[other, name] = shifted


ENTRY_CHUNK = 1 << 18  # entries per matrix and chunk in entry_moments (2 MiB in float64)
Rows = torch.Tensor | Callable[[int, int], torch.Tensor]


def entry_moments(mats: dict[str, Rows], shape: tuple[int, int]) -> Moments:
    """Sums and all pairwise inner products, plain and of centred entries, of matrices of
    ``shape``, accumulated in float64 over chunks of rows: no float64 copy of a whole matrix.
    Each matrix is a tensor or a function ``(start, stop) -> rows start:stop`` (a matrix never
    formed whole). Centred chunks are centred explicitly, as :func:`pearson` does."""
    names = list(mats)
    n = shape[0] * shape[1]

    def rows(name: str, start: int, stop: int) -> torch.Tensor:
        mat = mats[name]
        return mat(start, stop) if callable(mat) else mat[start:stop]

    step = max(1, ENTRY_CHUNK // shape[1])
    chunks = [(start, min(start + step, shape[0])) for start in range(0, shape[0], step)]
    sums = torch.zeros(len(names), dtype=torch.float64)
    for start, stop in chunks:
        sums += torch.stack([rows(name, start, stop).sum(dtype=torch.float64).cpu()
                             for name in names])
    means = sums / n
    raw = torch.zeros(len(names), len(names), dtype=torch.float64)
    centred = torch.zeros_like(raw)
    buffer = torch.empty(len(names), step * shape[1], dtype=torch.float64)
    for start, stop in chunks:
        flat = buffer[:, :(stop - start) * shape[1]]
        for k, name in enumerate(names):
            flat[k].copy_(rows(name, start, stop).reshape(-1))
        raw.addmm_(flat, flat.T)
        flat -= means[:, None]
        centred.addmm_(flat, flat.T)

    def table(gram: torch.Tensor) -> dict[tuple[str, str], float]:
        values = gram.tolist()
        return {(a, b): values[i][j] for i, a in enumerate(names) for j, b in enumerate(names)}

    return Moments(n, dict(zip(names, sums.tolist(), strict=True)), table(raw), table(centred))


def _congruence64(w: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """``W M W^T`` in float64 for W (d_out, d_in), M (d_in, d_in) symmetric, converting M by
    blocks of rows."""
    w = w.double()
    mw = torch.empty(m.shape[0], w.shape[0], dtype=torch.float64)
    step = max(1, ENTRY_CHUNK // m.shape[1])
    for start in range(0, m.shape[0], step):
        mw[start:start + step] = m[start:start + step].double() @ w.T
    return _gram(w.T, mw)


def _is_nfm_of(m: torch.Tensor, w: torch.Tensor) -> bool:
    """Whether ``M == W^T W`` to float32 rounding, from one random probe ``M v`` (a replaced M,
    e.g. of ``W - W0``, differs in every direction)."""
    v = torch.randn(m.shape[1], 1, dtype=torch.float64,
                    generator=torch.Generator().manual_seed(0))
    mv = m.double() @ v if m.dtype == torch.float64 else (m @ v.to(m.dtype)).double()
    wv = w.double().T @ (w.double() @ v)
    return float((mv - wv).norm()) <= 1e-4 * float(wv.norm())


def sqrt_moments(z: ZSpace, centred: bool, wmw: torch.Tensor, wsum: torch.Tensor,
                 wwt: torch.Tensor) -> tuple[float, float, float]:
    """``(sum(S), |S|_F^2, <S, M>_F)`` of ``S = AGOP^1/2`` (``centred``: of the centred AGOP)
    of a z-space layer, from ``d_out``-sized problems only, in float64.

    With ``K = L L^T`` (Cholesky, or ``L = E Lambda^1/2`` from ``eigh`` where ``K`` is
    singular), ``AGOP = W^T K W = F^T F`` for ``F = L^T W``. From
    ``F F^T = L^T (W W^T) L = U Sigma^2 U^T``, AGOP's eigenvectors are ``F^T u_i / sigma_i``
    with eigenvalues ``sigma_i^2``, so ``S = sum_i y_i y_i^T / sigma_i`` with
    ``y_i = W^T c_i``, ``c_i = L u_i``, over ``sigma_i > 0`` (numerically: ``sigma_i^2``
    above ``d_out * eps`` of the largest; the rest is AGOP's null space). Hence
    ``|S|_F^2 = sum sigma_i^2``, ``sum(S) = sum_i ((W 1)^T c_i)^2 / sigma_i`` and
    ``<S, M> = sum_i c_i^T (W M W^T) c_i / sigma_i``. Units with a zero diagonal in ``K``
    (dead ReLUs: their rows of ``K`` are 0) are left out first, which changes none of these.

    ``wmw`` is ``W M W^T``, ``wsum`` is ``W 1`` and ``wwt`` is ``W W^T`` (float64), the same
    for both square roots.
    """
    # units whose gradient is always 0 (dead ReLUs) have zero rows in K: leave them out
    active = torch.nonzero(z.agop.diagonal() > 0).flatten()
    if len(active) == 0:
        return 0.0, 0.0, 0.0
    k = z.agop[active][:, active].double()
    if centred:
        mean = z.jac_mean[:, active].double()
        k = k - mean.T @ mean
    factor, info = torch.linalg.cholesky_ex(k)
    if info != 0:
        values, vectors = _eigh(k)
        factor = vectors * values.clamp_min(0).sqrt()
    gram = factor.T @ wwt[active][:, active] @ factor
    values, vectors = _eigh((gram + gram.T) / 2)
    keep = values > max(float(values.max()), 0.0) * len(values) * torch.finfo(values.dtype).eps
    sigma = values[keep].sqrt()
    c = factor @ vectors[:, keep]  # (active, rank)
    total = ((wsum[active] @ c).square() / sigma).sum()
    inner = (((wmw[active][:, active] @ c) * c).sum(0) / sigma).sum()
    return float(total), float(sigma.square().sum()), float(inner)


CENTRED_ZERO = 256  # a centred AGOP below this many eps of the AGOP (Frobenius) is zero

SIMILARITY_PAIRS = {"agop_vs_nfm": ("agop", "M"), "sqrt_agop_vs_nfm": ("sqrt_agop", "M"),
                    "centred_agop_vs_nfm": ("cagop", "M"),
                    "sqrt_centred_agop_vs_nfm": ("sqrt_cagop", "M"),
                    "g_vs_h": ("G", "H"), "g_vs_m": ("G", "M"), "h_vs_m": ("H", "M")}


def layer_similarities(stats: LayerStats) -> dict[str, float]:
    """Cosines (and ``pearson_`` centred variants) of AGOP vs NFM, AGOP^1/2 vs NFM (also of
    the centred AGOP), G vs H, G vs M and H vs M, from float64 entry moments.

    Where the AGOP was taken in z space of a narrowing layer (``stats.z``, ``d_out < d_in``),
    the square roots' moments come from :func:`sqrt_moments` (``d_out``-sized ``eigh``, never
    a ``d_in``-sized square root); elsewhere from :func:`sqrt_psd`."""
    with one_thread():
        return _layer_similarities(stats)


def _layer_similarities(stats: LayerStats) -> dict[str, float]:
    mats: dict[str, Rows] = {"agop": stats.agop, "cagop": stats.agop, "G": stats.G,
                             "H": stats.H, "M": stats.M}
    if stats.jac_mean is not None:
        mean = stats.jac_mean
        mats["cagop"] = lambda a, b: stats.agop[a:b] - mean[:, a:b].T @ mean
    z = stats.z
    factored = z is not None and z.weight.shape[0] < z.weight.shape[1]
    if not factored:
        mats.update(sqrt_agop=sqrt_psd(stats.agop), sqrt_cagop=sqrt_psd(stats.centred_agop))
    moments = entry_moments(mats, stats.agop.shape)
    # A Jacobian that is the same for every sample (the output layer's, a linear network's)
    # has a centred AGOP of 0: what float32 leaves of it is rounding, reported as NaN.
    tol = CENTRED_ZERO * torch.finfo(stats.agop.dtype).eps
    centred_zero = moments.dots["cagop", "cagop"] <= tol ** 2 * moments.dots["agop", "agop"]
    if factored:
        w = z.weight.double()
        wwt = _gram(w.T)
        # M = W^T W (unless replaced): W M W^T = (W W^T)^2, d_out-sized
        wmw = wwt @ wwt if _is_nfm_of(stats.M, w) else _congruence64(w, stats.M)
        for name, centred in (("sqrt_agop", False), ("sqrt_cagop", True)):
            if not (centred and centred_zero):
                total, square, inner = sqrt_moments(z, centred, wmw, w.sum(1), wwt)
                moments.add(name, total, square, {"M": inner})
    out = {}
    for prefix, centred in (("", False), ("pearson_", True)):
        for name, (a, b) in SIMILARITY_PAIRS.items():
            zero = centred_zero and a in ("cagop", "sqrt_cagop")
            out[prefix + name] = float("nan") if zero else moments.cosine(a, b, centred)
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
    already explain.

    In float64, and for ``d_out < d_in`` from ``d_out``-sized products only: with
    ``A = X^T X`` and ``B = Y^T Y``, ``<A, B>_F = |X Y^T|_F^2`` and ``sum(A) = |X 1|^2``."""
    with one_thread():
        return _init_baseline(weight, init)


def _init_baseline(weight: torch.Tensor, init: torch.Tensor) -> float:
    w0 = init.detach().to(weight.device).flatten(1).double()
    d = weight.detach().flatten(1).double() - w0
    if d.shape[0] >= d.shape[1]:
        return pearson(d.T @ d, w0.T @ w0)
    moments = Moments(d.shape[1] ** 2, {}, {}, {})
    for name, x in (("A", d), ("B", w0)):
        moments.add(name, float(x.sum(1).square().sum()), float(_gram(x.T).square().sum()),
                    {"A": float((x @ d.T).square().sum())} if name == "B" else {})
    return moments.cosine("A", "B", centred=True)


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
                     loss: LossName = "cross_entropy", batch_size: int = 512,
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
