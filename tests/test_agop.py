"""AGOP / H / G / M statistics against per-sample brute force and a linear network's closed form."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mdcli.analysis import agop as agop_module
from mdcli.analysis.agop import (
    SIMILARITY_PAIRS,
    SPLIT_GRAM,
    cosine,
    entry_moments,
    feature_layers,
    init_baseline,
    layer_similarities,
    layer_statistics,
    nfm,
    pearson,
    sqrt_psd,
)
from mdcli.errors import InputError
from mdcli.models.classifier import linear_layers
from mdcli.models.convnet import ConvNet
from mdcli.models.mlp import MLP


def brute_force(model: nn.Module, layer: nn.Linear, x: torch.Tensor, y: torch.Tensor, loss: str):
    """Per sample, per output: one autograd.grad each; float64 sums of outer products."""
    d = layer.in_features
    sums = {k: torch.zeros(d, d, dtype=torch.float64) for k in ("H", "G", "agop")}
    store: dict[str, torch.Tensor] = {}
    handle = layer.register_forward_hook(lambda m, a, o: store.update(h=a[0]))
    for n in range(len(x)):
        out = model(x[n:n + 1].clone().requires_grad_(True))[0]
        h = store["h"]
        for c in range(out.shape[0]):
            (grad,) = torch.autograd.grad(out[c], h, retain_graph=True)
            sums["agop"] += torch.outer(grad.flatten(), grad.flatten())
        if loss == "mse":
            value = ((out - F.one_hot(y[n], out.shape[0]).double()) ** 2).mean()
        else:
            value = -torch.log_softmax(out, 0)[y[n]]
        (grad,) = torch.autograd.grad(-value, h)
        sums["G"] += torch.outer(grad.flatten(), grad.flatten())
        sums["H"] += torch.outer(h.detach().flatten(), h.detach().flatten())
    handle.remove()
    return {k: v / len(x) for k, v in sums.items()}


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_mlp_statistics_match_per_sample_brute_force_in_float64(loss):
    torch.manual_seed(0)
    model = MLP(7, [6, 9, 5], 4, activation="tanh", bias=True).double()
    x, y = torch.randn(13, 7, dtype=torch.float64), torch.randint(0, 4, (13,))
    stats = layer_statistics(model, None, x, y, loss=loss, batch_size=5)
    for layer, got in zip(linear_layers(model), stats, strict=True):
        ref = brute_force(model, layer, x, y, loss)
        assert rel(got.agop, ref["agop"]) < 1e-6
        assert rel(got.G, ref["G"]) < 1e-6
        assert rel(got.H, ref["H"]) < 1e-6
        w = layer.weight.detach().numpy()
        np.testing.assert_allclose(got.M.numpy(), w.T @ w, rtol=1e-12)
        assert got.n_samples == 13


def test_wide_layers_match_brute_force():
    """Widths >= SPLIT_GRAM take the block-wise X^T X path, and z space for the narrow ones."""
    torch.manual_seed(6)
    model = MLP(SPLIT_GRAM + 4, [SPLIT_GRAM + 2], 3).double()
    x, y = torch.randn(5, SPLIT_GRAM + 4, dtype=torch.float64), torch.randint(0, 3, (5,))
    stats = layer_statistics(model, None, x, y, loss="mse", batch_size=3)
    for layer, got in zip(linear_layers(model), stats, strict=True):
        ref = brute_force(model, layer, x, y, "mse")
        for key in ("H", "G", "agop"):
            assert rel(getattr(got, key), ref[key]) < 1e-6


def test_convnet_head_statistics_match_brute_force():
    torch.manual_seed(1)
    model = ConvNet([1, 4, 4], [3], [5], 3, norm=True).double()
    x, y = torch.randn(6, 1, 4, 4, dtype=torch.float64), torch.randint(0, 3, (6,))
    stats = layer_statistics(model, linear_layers(model), x, y, loss="cross_entropy",
                             batch_size=4)
    for layer, got in zip(linear_layers(model), stats, strict=True):
        ref = brute_force(model, layer, x, y, "cross_entropy")
        assert rel(got.agop, ref["agop"]) < 1e-6 and rel(got.G, ref["G"]) < 1e-6


def test_linear_network_matches_closed_form():
    """f = W2 W1 x: AGOP_0 = (W2 W1)^T (W2 W1), AGOP_1 = W2^T W2, H_1 = W1 H_0 W1^T and, for
    MSE, g_0 = -(W2 W1)^T r with r = 2 (f - onehot) / C."""
    rng = np.random.default_rng(3)
    n, d, k, c = 40, 5, 6, 3
    x, y = rng.normal(size=(n, d)), rng.integers(0, c, n)
    w1, w2 = rng.normal(size=(k, d)), rng.normal(size=(c, k))
    model = nn.Sequential(nn.Linear(d, k, bias=False), nn.Linear(k, c, bias=False)).double()
    with torch.no_grad():
        model[0].weight.copy_(torch.from_numpy(w1))
        model[1].weight.copy_(torch.from_numpy(w2))
    stats = layer_statistics(model, None, torch.from_numpy(x), torch.from_numpy(y), loss="mse",
                             batch_size=16)
    prod = w2 @ w1
    h0 = x.T @ x / n
    r = 2 * (x @ prod.T - np.eye(c)[y]) / c
    g0 = prod.T @ (r.T @ r / n) @ prod
    g1 = w2.T @ (r.T @ r / n) @ w2
    expected = [(h0, g0, w1.T @ w1, prod.T @ prod), (w1 @ h0 @ w1.T, g1, w2.T @ w2, w2.T @ w2)]
    for got, (h, g, m, agop) in zip(stats, expected, strict=True):
        for value, ref in ((got.H, h), (got.G, g), (got.M, m), (got.agop, agop)):
            np.testing.assert_allclose(value.numpy(), ref, rtol=1e-10, atol=1e-12)


def test_float32_batched_result_is_close_to_float64():
    torch.manual_seed(2)
    model = MLP(10, [32, 32], 5)
    x, y = torch.randn(50, 10), torch.randint(0, 5, (50,))
    low = layer_statistics(model, None, x, y, batch_size=17)
    high = layer_statistics(model.double(), None, x.double(), y)
    for a, b in zip(low, high, strict=True):
        assert rel(a.agop, b.agop) < 1e-4 and rel(a.G, b.G) < 1e-4


def test_last_layer_agop_equals_its_nfm():
    torch.manual_seed(4)
    model = MLP(8, [12, 12], 4, bias=True)
    stats = layer_statistics(model, [2], torch.randn(20, 8), torch.randint(0, 4, (20,)))
    assert layer_similarities(stats[0])["agop_vs_nfm"] == pytest.approx(1.0, abs=1e-6)


def test_cosine_pearson_and_sqrt_against_numpy():
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=(6, 6)), rng.normal(size=(6, 6))
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    assert cosine(ta, tb) == pytest.approx(np.sum(a * b) / np.linalg.norm(a) / np.linalg.norm(b))
    assert pearson(ta, tb) == pytest.approx(np.corrcoef(a.ravel(), b.ravel())[0, 1])
    assert cosine(ta, 3 * ta) == pytest.approx(1.0)
    assert np.isnan(cosine(ta, torch.zeros(6, 6)))
    psd = a @ a.T
    root = sqrt_psd(torch.from_numpy(psd)).numpy()
    np.testing.assert_allclose(root @ root, psd, atol=1e-10)
    np.testing.assert_allclose(root, root.T, atol=1e-12)


def test_nfm_without_init_removes_the_initial_weights():
    w, w0 = torch.randn(4, 3, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    np.testing.assert_allclose(nfm(w, w0).numpy(), ((w - w0).T @ (w - w0)).numpy())


def test_bad_layers_and_shared_layers_are_input_errors():
    model = MLP(4, [5], 2)
    x, y = torch.randn(3, 4), torch.randint(0, 2, (3,))
    with pytest.raises(InputError, match="2 linear/conv layers"):
        layer_statistics(model, [5], x, y)
    shared = nn.Linear(4, 4)
    twice = nn.Sequential(shared, nn.ReLU(), shared, nn.Linear(4, 2))
    with pytest.raises(InputError, match="called 2 times"):
        layer_statistics(twice, [shared], x, y)


def conv_brute_force(model: nn.Module, conv: nn.Conv2d, x: torch.Tensor, y: torch.Tensor):
    """Per sample, per output: the conv's output recomputed as W @ patches from a leaf tensor
    of patches, so autograd gives df_c/dp_l for every position l directly."""
    d = conv.weight[0].numel()
    sums = {k: torch.zeros(d, d, dtype=torch.float64) for k in ("H", "G", "agop")}
    jac_sum = torch.zeros(10, d, dtype=torch.float64)
    store: dict[str, torch.Tensor] = {}

    def hook(module, args, output):
        patches = F.unfold(args[0].detach(), conv.kernel_size, conv.dilation, conv.padding,
                           conv.stride)[0].T.clone().requires_grad_(True)  # (L, d)
        store["p"] = patches
        z = patches @ conv.weight.flatten(1).T + conv.bias
        return z.T.reshape(output.shape)

    handle = conv.register_forward_hook(hook)
    positions = 0
    for n in range(len(x)):
        out = model(x[n:n + 1])[0]
        p = store["p"]
        positions = len(p)
        for c in range(out.shape[0]):
            (grad,) = torch.autograd.grad(out[c], p, retain_graph=True)  # (L, d)
            sums["agop"] += grad.T @ grad
            jac_sum[c] += grad.sum(0)
        (grad,) = torch.autograd.grad(torch.log_softmax(out, 0)[y[n]], p)  # g = -dl/dp
        sums["G"] += grad.T @ grad
        sums["H"] += p.detach().T @ p.detach()
    handle.remove()
    out = {k: v / len(x) for k, v in sums.items()}
    mean = jac_sum[:out_classes(model, x)] / (len(x) * positions)
    out["centred"] = out["agop"] - positions * mean.T @ mean
    return out


def out_classes(model: nn.Module, x: torch.Tensor) -> int:
    return model(x[:1]).shape[1]


def test_conv_layer_patch_statistics_match_brute_force():
    torch.manual_seed(3)
    model = ConvNet([2, 6, 6], [3, 4], [5], 3, norm=True).double()
    x, y = torch.randn(5, 2, 6, 6, dtype=torch.float64), torch.randint(0, 3, (5,))
    convs = [m for m in feature_layers(model) if isinstance(m, nn.Conv2d)]
    assert len(convs) == 2 and len(feature_layers(model)) == 4  # every layer is analysed
    stats = layer_statistics(model, None, x, y, loss="cross_entropy", batch_size=2)
    for conv, got in zip(convs, stats[:2], strict=True):
        ref = conv_brute_force(model, conv, x, y)
        for key in ("H", "G", "agop"):
            assert rel(getattr(got, key), ref[key]) < 1e-6, key
        assert rel(got.centred_agop, ref["centred"]) < 1e-6
        w = conv.weight.detach().reshape(conv.out_channels, -1).numpy()
        np.testing.assert_allclose(got.M.numpy(), w.T @ w, rtol=1e-12)


def test_centred_agop_of_a_linear_layer_against_numpy():
    torch.manual_seed(8)
    model = MLP(6, [7], 3).double()
    x, y = torch.randn(11, 6, dtype=torch.float64), torch.randint(0, 3, (11,))
    first = linear_layers(model)[0]
    (got,) = layer_statistics(model, [first], x, y)
    jac = []  # (n, C, d): per-sample Jacobians of the logits w.r.t. the first layer's input
    for n in range(len(x)):
        jac.append(torch.autograd.functional.jacobian(model, x[n:n + 1])[0, :, 0].numpy())
    jac = np.stack(jac)
    mean = jac.mean(0)
    centred = np.einsum("nci,ncj->ij", jac - mean, jac - mean) / len(x)
    np.testing.assert_allclose(got.centred_agop.numpy(), centred, atol=1e-10)


def test_init_baseline_is_pearson_of_the_two_nfms():
    rng = np.random.default_rng(9)
    w, w0 = rng.normal(size=(5, 4)), rng.normal(size=(5, 4))
    a, b = (w - w0).T @ (w - w0), w0.T @ w0
    expected = np.corrcoef(a.ravel(), b.ravel())[0, 1]
    assert init_baseline(torch.from_numpy(w), torch.from_numpy(w0)) == pytest.approx(expected)


def numpy_similarities(agop, centred, g, h, m):
    """The similarities from dense float64 numpy matrices: eigh square roots (eigenvalues
    below the rank tolerance as 0: their float64 rounding would add sqrt(eps)), np.corrcoef."""
    def root(a):
        values, vectors = np.linalg.eigh(a)
        values[values < values.max() * len(a) * np.finfo(float).eps] = 0
        return (vectors * np.sqrt(values)) @ vectors.T

    mats = {"agop": agop, "sqrt_agop": root(agop), "cagop": centred, "sqrt_cagop": root(centred),
            "G": g, "H": h, "M": m}
    out = {}
    for name, (a, b) in SIMILARITY_PAIRS.items():
        x, y = mats[a].ravel(), mats[b].ravel()
        out[name] = x @ y / np.linalg.norm(x) / np.linalg.norm(y)
        out["pearson_" + name] = np.corrcoef(x, y)[0, 1]
    return out


def test_z_space_square_root_moments_equal_dense_square_roots_with_dead_units():
    """A narrowing first layer keeps its AGOP factored (K in z space); AGOP^1/2's moments from
    the d_out-sized problem equal numpy's dense square root, also with dead ReLU units (zero
    rows of K, Cholesky impossible without dropping them) and for the centred AGOP."""
    torch.manual_seed(10)
    model = MLP(24, [9, 7], 3, bias=False).double()
    first = linear_layers(model)[0]
    with torch.no_grad():
        first.weight[:3] = -first.weight[:3].abs()  # inputs >= 0: these 3 units never fire
    x, y = torch.rand(40, 24, dtype=torch.float64), torch.randint(0, 3, (40,))
    (st,) = layer_statistics(model, [first], x, y, loss="cross_entropy")
    assert st.z is not None and (st.z.agop.diagonal()[:3] == 0).all()
    w = first.weight.detach().numpy()
    agop = w.T @ st.z.agop.numpy() @ w
    np.testing.assert_allclose(st.agop.numpy(), agop, atol=1e-12)
    mean = st.z.jac_mean.numpy() @ w
    expected = numpy_similarities(agop, agop - mean.T @ mean, st.G.numpy(), st.H.numpy(),
                                  w.T @ w)
    got = layer_similarities(st)
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, abs=1e-9), name
    dense = layer_similarities(dataclasses.replace(st, z=None))  # the d_in-sized eigh path
    for name, value in expected.items():  # that one carries sqrt(eps) from the null space
        assert dense[name] == pytest.approx(value, abs=1e-6), name


def test_square_root_moments_use_the_given_nfm():
    """--remove-init replaces M: <AGOP^1/2, M> is taken with that M, not W^T W."""
    torch.manual_seed(11)
    model = MLP(20, [6], 4, bias=False).double()
    first = linear_layers(model)[0]
    x, y = torch.rand(30, 20, dtype=torch.float64), torch.randint(0, 4, (30,))
    (st,) = layer_statistics(model, [first], x, y)
    other = torch.randn(5, 20, dtype=torch.float64)
    st = dataclasses.replace(st, M=other.T @ other)
    expected = numpy_similarities(st.agop.numpy(), st.centred_agop.numpy(), st.G.numpy(),
                                  st.H.numpy(), st.M.numpy())
    got = layer_similarities(st)
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, abs=1e-9), name


def test_output_layer_centred_agop_is_nan_not_rounding():
    """The output layer's Jacobian is W for every sample, so its centred AGOP is 0; float32
    leaves rounding of it, reported as NaN; a hidden layer's is not."""
    torch.manual_seed(12)
    model = MLP(30, [40], 5, bias=False)
    x, y = torch.rand(1000, 30), torch.randint(0, 5, (1000,))
    hidden, out = layer_statistics(model, None, x, y, loss="mse", batch_size=300)
    sims = layer_similarities(out)
    assert sims["agop_vs_nfm"] == pytest.approx(1.0, abs=1e-6)
    for name in ("centred_agop_vs_nfm", "sqrt_centred_agop_vs_nfm",
                 "pearson_centred_agop_vs_nfm", "pearson_sqrt_centred_agop_vs_nfm"):
        assert np.isnan(sims[name]), name
    assert not np.isnan(layer_similarities(hidden)["centred_agop_vs_nfm"])


def test_entry_moments_over_many_chunks_against_numpy(monkeypatch):
    monkeypatch.setattr(agop_module, "ENTRY_CHUNK", 7)  # 1 row of 7 per chunk
    rng = np.random.default_rng(13)
    a, b = rng.normal(size=(5, 7)) + 3, rng.normal(size=(5, 7))
    moments = entry_moments({"a": torch.from_numpy(a).float(),
                             "b": lambda i, j: torch.from_numpy(b[i:j])}, (5, 7))
    a = a.astype(np.float32).astype(np.float64)
    assert moments.sums["a"] == pytest.approx(a.sum())
    assert moments.dots["a", "b"] == pytest.approx(np.sum(a * b))
    assert moments.cosine("a", "b") == pytest.approx(np.sum(a * b) / np.linalg.norm(a)
                                                     / np.linalg.norm(b))
    assert moments.cosine("a", "b", centred=True) == pytest.approx(
        np.corrcoef(a.ravel(), b.ravel())[0, 1])


@pytest.mark.parametrize("d", [3, 4, 11, 12])
def test_strip_gram_equals_the_full_product(monkeypatch, d):
    """X^T X from the upper block strips and a mirror, for widths with 1-3 strips of 4."""
    monkeypatch.setattr(agop_module, "SPLIT_GRAM", 4)
    x = torch.randn(9, d, dtype=torch.float64)
    np.testing.assert_allclose(nfm(x).numpy(), x.numpy().T @ x.numpy(), atol=1e-12)
    acc = torch.full((d, d), float("nan"), dtype=torch.float64)
    agop_module._add_gram(acc, x[:4], 0.5, first=True)
    agop_module._add_gram(acc, x[4:], 0.5, first=False)
    agop_module._mirror(acc)
    np.testing.assert_allclose(acc.numpy(), x.numpy().T @ x.numpy() / 2, atol=1e-12)


def test_init_baseline_of_a_narrowing_layer_from_its_small_products():
    """d_out < d_in: the baseline from d_out-sized products equals np.corrcoef of the NFMs."""
    rng = np.random.default_rng(14)
    w, w0 = rng.normal(size=(3, 8)) + 0.5, rng.normal(size=(3, 8))
    a, b = (w - w0).T @ (w - w0), w0.T @ w0
    expected = np.corrcoef(a.ravel(), b.ravel())[0, 1]
    assert init_baseline(torch.from_numpy(w), torch.from_numpy(w0)) == pytest.approx(expected)
    assert np.isnan(init_baseline(torch.from_numpy(w0), torch.from_numpy(w0)))
