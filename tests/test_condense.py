"""Condensation parts: multi-formation, class split, streams, sampling net, features, the loop."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mdcli.condense.classes import distribute_classes
from mdcli.condense.condenser import Condenser
from mdcli.condense.config import CondenseConfig
from mdcli.condense.data import RealData
from mdcli.condense.decode import check_factor, decode, decode_labels, encode
from mdcli.condense.domains import ImageDomain, image_features
from mdcli.condense.evaluate import random_subset, summarise
from mdcli.condense.premodels import Premodel, blend
from mdcli.condense.sampling import SamplingNet
from mdcli.condense.streams import stream
from mdcli.condense.synfile import load_syn, save_syn
from mdcli.condense.text_training import micro_f1
from mdcli.dist import DistContext
from mdcli.errors import InputError
from mdcli.losses.ncfm import cf_loss
from mdcli.models.classifier import ModelConfig, build_classifier
from mdcli.storage.checkpoint import save_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")


def test_decode_cuts_tiles_in_row_order_and_upsamples():
    stored = torch.zeros(1, 1, 4, 4)
    for i, (r, c) in enumerate([(0, 0), (0, 2), (2, 0), (2, 2)]):
        stored[0, 0, r:r + 2, c:c + 2] = i + 1.0
    out = decode(stored, 2)
    assert out.shape == (4, 1, 4, 4)
    for i in range(4):  # a constant tile upsamples to a constant image
        torch.testing.assert_close(out[i], torch.full((1, 4, 4), i + 1.0))
    assert decode_labels(torch.tensor([3, 5]), 2).tolist() == [3, 3, 3, 3, 5, 5, 5, 5]


def test_encode_places_downsampled_images_as_tiles():
    images = torch.arange(4.0).reshape(4, 1, 1, 1).expand(4, 1, 6, 6).clone()
    stored = encode(images, 2)
    assert stored.shape == (1, 1, 6, 6)
    assert stored[0, 0, :3, :3].unique().tolist() == [0.0]
    assert stored[0, 0, :3, 3:].unique().tolist() == [1.0]
    assert stored[0, 0, 3:, :3].unique().tolist() == [2.0]
    torch.testing.assert_close(decode(stored, 2), images)
    x = torch.randn(3, 2, 8, 8)
    assert decode(x, 1) is x and encode(x, 1) is x


def test_factor_must_divide_the_image():
    check_factor((1, 8, 8), 4)
    with pytest.raises(InputError, match="condense.factor"):
        check_factor((1, 8, 8), 3)


@pytest.mark.parametrize(("nclass", "world"), [(10, 1), (10, 2), (10, 3), (2, 3)])
def test_classes_are_split_into_disjoint_balanced_blocks(nclass, world):
    parts = [distribute_classes(nclass, world, r) for r in range(world)]
    assert sorted(c for p in parts for c in p) == list(range(nclass))
    assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_streams_depend_on_every_key_only():
    draw = lambda *k: torch.rand(3, generator=stream(*k)).tolist()  # noqa: E731
    assert draw(0, "real", 5, 2) == draw(0, "real", 5, 2)
    assert len({tuple(draw(*k)) for k in [(0, "real", 5, 2), (0, "real", 6, 2), (0, "real", 5, 3),
                                          (1, "real", 5, 2), (0, "init", 5, 2)]}) == 5


def test_sampling_net_gives_num_freqs_distinct_frequencies_starting_gaussian():
    net = SamplingNet(6, scale=2.0)
    z = torch.randn(4096, 6)
    t = net(z)
    assert t.shape == (4096, 6)
    assert len(torch.unique(t, dim=0)) == 4096
    torch.testing.assert_close(t, 2.0 * z)


def test_sampling_net_ascent_increases_the_cf_discrepancy():
    gen = torch.Generator().manual_seed(0)
    real, syn = torch.randn(64, 4, generator=gen), torch.randn(8, 4, generator=gen) + 0.5
    net = SamplingNet(4)
    z = torch.randn(256, 4, generator=gen)
    opt = torch.optim.Adam(net.parameters(), lr=0.02)
    before = cf_loss(real, syn, net(z)).item()
    for _ in range(15):
        opt.zero_grad()
        (-cf_loss(real, syn, net(z))).backward()
        opt.step()
    assert cf_loss(real, syn, net(z)).item() > before * 1.05


def test_image_features_default_and_chosen_layers():
    torch.manual_seed(0)
    mlp = build_classifier(ModelConfig(arch="mlp", hidden=[5, 4], input_shape=[1, 2, 3],
                                       num_classes=3))
    x = torch.randn(7, 1, 2, 3)
    w1, w2, _ = (m.weight for m in mlp.net if isinstance(m, torch.nn.Linear))
    h1 = torch.relu(x.flatten(1) @ w1.T)
    h2 = torch.relu(h1 @ w2.T)
    (penultimate,) = image_features(mlp, x, [])
    torch.testing.assert_close(penultimate, h2)
    first, second = image_features(mlp, x, [1, 2])
    torch.testing.assert_close(first, h1)
    torch.testing.assert_close(second, h2)
    with pytest.raises(InputError, match="layer_index"):
        image_features(mlp, x, [3])
    conv = build_classifier(ModelConfig(arch="convnet", hidden=[8], channels=[4],
                                        input_shape=[1, 4, 4], num_classes=3))
    torch.testing.assert_close(image_features(conv, x.reshape(7, 1, 2, 3)[:, :, :2, :2].repeat(
        1, 1, 2, 2), [])[0], conv.embed(x.reshape(7, 1, 2, 3)[:, :, :2, :2].repeat(1, 1, 2, 2)))


def test_blend_interpolates_float_weights():
    pm = Premodel({"w": torch.zeros(2), "n": torch.tensor(1)}, {"w": torch.ones(2) * 4,
                                                               "n": torch.tensor(7)})
    assert blend(pm, 0.0)["w"].tolist() == [0, 0]
    assert blend(pm, 0.25)["w"].tolist() == [1, 1]
    assert blend(pm, 1.0)["w"].tolist() == [4, 4] and blend(pm, 0.3)["n"].item() == 7


def test_micro_f1_matches_sklearn():
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(0)
    pred, target = rng.random((40, 5)) < 0.3, rng.random((40, 5)) < 0.4
    assert micro_f1(torch.from_numpy(pred), torch.from_numpy(target)) == pytest.approx(
        f1_score(target, pred, average="micro"))


def test_summarise_gives_mean_population_std_and_runs():
    assert summarise([0.5, 0.7]) == {"mean": pytest.approx(0.6), "std": pytest.approx(0.1),
                                     "runs": [0.5, 0.7]}


def _toy_data(multilabel: bool = False) -> RealData:
    gen = torch.Generator().manual_seed(0)
    y = torch.arange(3).repeat_interleave(20)
    x = torch.randn(60, 1, 4, 4, generator=gen) + y.view(-1, 1, 1, 1).float()
    labels = F.one_hot(y, 3).float() if multilabel else y
    return RealData("image", x, labels, x[:9], labels[:9], 3, ["a", "b", "c"], multilabel)


def test_class_members_and_random_subset():
    data = _toy_data(multilabel=True)
    data.y_train[0, 1] = 1.0  # sample 0 is in classes a and b
    assert 0 in data.class_members(1).tolist() and len(data.class_members(1)) == 21
    x, y, mask = random_subset(data, 2, seed=4)
    assert x.shape == (6, 1, 4, 4) and mask is None
    assert [y[2 * c:2 * c + 2, c].min().item() for c in range(3)] == [1.0, 1.0, 1.0]


def _condenser(tmp_path, **condense) -> Condenser:
    data = _toy_data()
    cfg = CondenseConfig(seed=0, device="cpu")
    cfg.network.model = ModelConfig(arch="convnet", channels=[4], hidden=[8], bias=True)
    cfg.dataset.batch_real = 8
    cfg.condense = dataclasses.replace(cfg.condense, ipc=2, num_premodel=2, num_freqs=64,
                                       **condense)
    domain = ImageDomain(cfg, data)
    premodels = [Premodel(domain.new_model(10 + i).state_dict(),
                          domain.new_model(20 + i).state_dict()) for i in range(2)]
    ctx = DistContext(0, 1, 0, torch.device("cpu"))
    return Condenser(cfg, data, domain, premodels, ctx, [0, 1, 2])


def test_loss_scale_is_applied_by_the_caller(tmp_path):
    one = _condenser(tmp_path, loss_scale=1.0, iter_calib=0).step(1)["match_loss"]
    three = _condenser(tmp_path, loss_scale=3.0, iter_calib=0).step(1)["match_loss"]
    assert three == pytest.approx(3 * one, rel=1e-6)


def test_each_iteration_draws_a_fresh_real_batch(tmp_path):
    cond = _condenser(tmp_path, iter_calib=0)
    features, seen = cond.domain.features, []

    def spy(model, x, mask, layers):
        if not torch.is_grad_enabled():  # the real batch (synthetic features need gradients)
            seen.append(x.clone())
        return features(model, x, mask, layers)

    cond.domain.features = spy
    for it in (1, 2):
        cond.step(it)
    first, second = seen[0], seen[3]  # class 0 at iterations 1 and 2
    class0 = cond.x_real[cond.members[0]]
    assert len(seen) == 6 and len(first) == 8
    assert all(any(torch.equal(row, m) for m in class0) for row in first)
    assert not torch.equal(first, second) and not torch.equal(first, class0[:8])


def test_sampling_net_steps_up_the_matching_loss(tmp_path):
    cond = _condenser(tmp_path, iter_calib=0, sampling_net=True)
    cond.optimizer = torch.optim.SGD([cond.syn], lr=0.0)  # keep the synthetic data fixed
    cond.net_optimizer = torch.optim.Adam(cond.nets.parameters(), lr=0.01)
    losses = [cond.step(1)["match_loss"] for _ in range(4)]  # same draws, updated network
    assert losses[1] > losses[0] and losses[3] > losses[1]


def test_multilabel_synthetic_labels_are_label_vectors(tmp_path):
    data = _toy_data(multilabel=True)
    cond = _condenser(tmp_path, iter_calib=1)
    cond = Condenser(cond.cfg, data, cond.domain, cond.premodels,
                     DistContext(0, 1, 0, torch.device("cpu")), [0, 1, 2])
    assert cond.step(1)["calib_loss"] > 0
    torch.testing.assert_close(cond.gather()["labels"], torch.eye(3).repeat_interleave(2, 0))


@pytest.mark.parametrize("options", [{"dis_metrics": "NCFM"}, {"dis_metrics": "MMD"},
                                     {"sampling_net": True, "factor": 2, "init": "mix"}])
def test_condensing_lowers_the_matching_loss(tmp_path, options):
    cond = _condenser(tmp_path, iter_calib=1, calib_weight=0.01, **options)
    cond.cfg.optimization.optimizer = "adam"
    cond.optimizer = torch.optim.Adam([cond.syn], lr=0.05)
    start = cond.syn.detach().clone()
    first = np.mean([cond.step(it)["match_loss"] for it in range(1, 4)])
    for it in range(4, 20):
        cond.step(it)
    last = np.mean([cond.step(it)["match_loss"] for it in range(20, 23)])
    assert last < first
    assert not torch.equal(cond.syn.detach(), start)
    full = cond.gather()
    assert full["data"].shape == (6, 1, 4, 4) and full["labels"].tolist() == [0, 0, 1, 1, 2, 2]


def test_syn_file_round_trip_and_wrong_kind(tmp_path):
    path = save_syn(tmp_path / "s.pth", {"data": torch.zeros(2, 1, 2, 2),
                                          "labels": torch.tensor([0, 1])}, factor=1, config={})
    record = torch.load(path, weights_only=True)
    assert record["kind"] == "ncfm-syn"
    assert load_syn(path)["labels"].tolist() == [0, 1]
    save_checkpoint(tmp_path / "other.pt", {"kind": "classifier"})
    with pytest.raises(InputError, match="not a condensed data file"):
        load_syn(tmp_path / "other.pt")
