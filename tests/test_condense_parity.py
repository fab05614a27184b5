"""Reference parity of ``mdcli condense``: fair evaluation seeds, reference YAML files,
decode types, optimisers, the per-class schedule, DM's MMD and ``init: mix`` for text."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from mdcli.condense.condenser import Condenser
from mdcli.condense.config import CondenseConfig
from mdcli.condense.data import RealData
from mdcli.condense.decode import decode, decode_class
from mdcli.condense.domains import ImageDomain, TextDomain
from mdcli.condense.evaluate import check_disjoint
from mdcli.condense.premodels import Premodel
from mdcli.condense.reference import load_condense_config
from mdcli.condense.streams import evaluation_seed
from mdcli.dist import DistContext
from mdcli.errors import InputError, RunFailure
from mdcli.models.classifier import ModelConfig, build_classifier

pytestmark = pytest.mark.usefixtures("one_thread")
FIXTURES = Path(__file__).parent / "fixtures" / "ncfm" / "config" / "ipc10"


def _data() -> RealData:
    gen = torch.Generator().manual_seed(0)
    y = torch.arange(3).repeat_interleave(20)
    x = torch.rand(60, 1, 4, 4, generator=gen) + y.view(-1, 1, 1, 1).float()
    return RealData("image", x, y, x[:9], y[:9], 3, ["a", "b", "c"], False)


def _cfg(**condense) -> CondenseConfig:
    cfg = CondenseConfig(seed=0, device="cpu")
    cfg.network.model = ModelConfig(arch="convnet", channels=[4], hidden=[8], bias=True)
    cfg.dataset.batch_real = 8
    cfg.augmentation.dsa = False
    cfg.condense = dataclasses.replace(cfg.condense, ipc=2, num_premodel=2, num_freqs=64,
                                       iter_calib=0, **condense)
    return cfg


def _condenser(cfg: CondenseConfig) -> Condenser:
    data = _data()
    domain = ImageDomain(cfg, data)
    premodels = [Premodel(domain.new_model(10 + i).state_dict(),
                          domain.new_model(20 + i).state_dict()) for i in range(2)]
    return Condenser(cfg, data, domain, premodels, DistContext(0, 1, 0, torch.device("cpu")),
                     [0, 1, 2])


def test_evaluation_networks_never_start_as_an_extractor():
    cfg = _cfg()
    domain = ImageDomain(cfg, _data())
    extractors = []
    for index in range(50):  # extractor i is trained from torch.manual_seed(i)
        torch.manual_seed(index)
        extractors.append(build_classifier(domain.model_cfg).state_dict())
    for seed in range(20):
        net = domain.new_model(evaluation_seed(seed)).state_dict()
        for ext in extractors:
            assert not any(torch.equal(net[k], v) for k, v in ext.items() if v.ndim > 1)
    assert len({evaluation_seed(s) for s in range(1000)}) == 1000
    assert min(evaluation_seed(s) for s in range(1000)) >= 2**32
    check_disjoint(domain, [0, 1, 2, 3, 4], [Premodel(e, e) for e in extractors])


def test_check_disjoint_refuses_an_evaluation_net_equal_to_an_extractor():
    domain = ImageDomain(_cfg(), _data())
    clash = domain.new_model(evaluation_seed(3)).state_dict()
    with pytest.raises(RunFailure, match="evaluation seed 3: its network starts with extractor"):
        check_disjoint(domain, [0, 3], [Premodel(clash, clash)])


def test_default_evaluation_has_five_seeds_and_cross_architecture():
    ev = CondenseConfig().evaluation
    assert len(ev.seeds) >= 5 and "mlp" in ev.cross_arch


def _warnings(monkeypatch) -> list[str]:
    """Warnings of the reference loader (spied: other tests reconfigure mdcli's logger)."""
    import mdcli.condense.reference as reference

    seen: list[str] = []
    monkeypatch.setattr(reference.log, "warning", lambda msg, *a: seen.append(msg % a))
    return seen


def test_reference_reuters_yaml_loads_with_one_warning(monkeypatch):
    warnings = _warnings(monkeypatch)
    cfg = load_condense_config(FIXTURES / "reuters.yaml", [])
    assert len(warnings) == 1
    for key in ("dataset.data_dir", "dataset.load_memory", "network.norm_type",
                "network.depth"):
        assert key in warnings[0]
    assert cfg.dataset.modality == "text" and cfg.dataset.source == "reuters"
    assert cfg.dataset.nclass == 90 and cfg.dataset.is_multilabel
    assert cfg.network.layer_index == [3, 6, 9, 12] and cfg.network.max_length == 512
    assert cfg.optimization.lr_sampling_net == pytest.approx(1e-3)  # YAML 1.1 reads a string
    assert cfg.condense.num_premodel == 10 and cfg.condense.decode_type == "single"
    assert cfg.condense.init == "random"


def test_reference_cifar10_yaml_loads_augmentation_and_adamw(monkeypatch):
    warnings = _warnings(monkeypatch)
    cfg = load_condense_config(FIXTURES / "cifar10.yaml", ["condense.niter=5"])
    (warning,) = warnings
    assert "train" in warning and "augmentation.rrc" in warning and "save_path" in warning
    assert cfg.optimization.optimizer == "adamw" and cfg.network.model.arch == "convnet"
    assert cfg.augmentation.dsa and cfg.augmentation.mixup == "cut"
    assert cfg.augmentation.aug_type == "color_crop_cutout" and cfg.condense.niter == 5


def test_mdcli_configs_stay_strict(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("condense:\n  ipcc: 3\n")
    with pytest.raises(InputError, match="unknown config key 'condense.ipcc'"):
        load_condense_config(path, [])


def test_decode_types_follow_the_reference():
    x = torch.rand(3, 1, 4, 4)
    labels = torch.tensor([7, 7, 7])
    multi, ml = decode_class(x, labels, 2, "multi")
    torch.testing.assert_close(multi, torch.cat([x, decode(x, 2)]))
    assert len(ml) == 15
    bound, bl = decode_class(x, labels, 2, "bound", bound=10)  # room 7: one image x 4 tiles
    torch.testing.assert_close(bound, torch.cat([decode(x[:1], 2), x[1:]]))
    assert len(bl) == 6 and len(decode_class(x, labels, 2, "single")[0]) == 12


def test_adamw_and_the_per_class_schedule():
    cond = _condenser(_cfg(step_schedule="class"))
    steps = []
    original = cond.optimizer.step
    cond.optimizer.step = lambda: steps.append(1) or original()
    cond.step(1)
    assert len(steps) == 3  # one per class
    assert isinstance(_condenser(dataclasses.replace(
        _cfg(), optimization=dataclasses.replace(_cfg().optimization, optimizer="adamw"))
    ).optimizer, torch.optim.AdamW)
    # plain SGD: classes use disjoint rows, so stepping per class gives the same data
    a, b = _condenser(_cfg()), _condenser(_cfg(step_schedule="class"))
    for cond in (a, b):
        cond.optimizer.param_groups[0]["momentum"] = 0.0
        cond.step(1)
    torch.testing.assert_close(a.syn, b.syn)


@pytest.mark.parametrize("variant", ["dm", "normalised"])
def test_mmd_variants_against_numpy(variant):
    cond = _condenser(_cfg(dis_metrics="MMD", mmd_variant=variant))
    features, seen = cond.domain.features, []

    def spy(model, x, mask, layers):
        out = features(model, x, mask, layers)
        seen.append(out[0].detach().double().numpy())
        return out

    cond.domain.features = spy
    loss = cond.match_scale() * cond.match_loss(0, 0, 1, [])
    real, syn = seen
    if variant == "normalised":
        real = real / np.linalg.norm(real, axis=1, keepdims=True)
        syn = syn / np.linalg.norm(syn, axis=1, keepdims=True)
    expected = np.sum((real.mean(0) - syn.mean(0)) ** 2) * (300 if variant != "dm" else 1)
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_text_init_mix_is_refused():
    cfg = CondenseConfig()
    cfg.condense.init = "mix"
    data = RealData("text", torch.zeros(2, 4, dtype=torch.long), torch.tensor([0, 1]),
                    torch.zeros(2, 4, dtype=torch.long), torch.tensor([0, 1]), 2, ["a", "b"],
                    False, torch.ones(2, 4), torch.ones(2, 4))
    with pytest.raises(InputError, match="'condense.init': 'mix'.*images only"):
        TextDomain(cfg, data)


def test_evaluation_applies_the_thread_policy_and_reports_every_row(monkeypatch):
    import mdcli.condense.evaluate as evaluate

    calls = []
    monkeypatch.setattr(evaluate, "apply_thread_policy", lambda: calls.append(1) or 1)
    cfg = _cfg()
    cfg.evaluation = dataclasses.replace(cfg.evaluation, seeds=[0, 1], epochs=1, full_epochs=1)
    data = _data()
    domain = ImageDomain(cfg, data)
    syn = {"data": data.x_train[::10][:6], "labels": data.y_train[::10][:6], "factor": 1}
    result = evaluate.evaluate_condensed(cfg, data, domain, syn, torch.device("cpu"))
    assert calls == [1]
    assert set(result["cross_arch"]["mlp"]) == {"condensed", "random_subset"}
    assert result["full"]["budget"] == {"samples": 60, "epochs": 1, "steps": 1}
    assert len(result["condensed"]["runs"]) == 2
