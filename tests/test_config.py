from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest

from mdcli.config import apply_override, load_config, param, resolve_config_path, to_dict
from mdcli.errors import InputError


@dataclass
class Optim:
    name: Literal["sgd", "adam"] = "adam"
    lr: float = param(1e-3, gt=0)
    betas: list[float] = param([0.9, 0.999])


@dataclass
class Schema:
    seed: int = param(0, ge=0)
    device: str = "auto"
    epochs: int = param(10, ge=1)
    layers: list[int] | None = None
    optim: Optim = field(default_factory=Optim)


def write(tmp_path, text):
    path = tmp_path / "cfg.yml"
    path.write_text(text)
    return path


def test_yaml_and_overrides_build_typed_config(tmp_path):
    path = write(tmp_path, "epochs: 3\noptim:\n  lr: 1e-2\n")
    cfg = load_config(Schema, path, ["optim.name=sgd", "layers=[0, 2]", "optim.lr=5"])
    assert cfg.epochs == 3 and cfg.optim.name == "sgd" and cfg.layers == [0, 2]
    assert cfg.optim.lr == 5.0 and isinstance(cfg.optim.lr, float)
    assert to_dict(cfg)["optim"]["betas"] == [0.9, 0.999]


def test_defaults_are_not_shared_between_instances():
    a, b = load_config(Schema), load_config(Schema)
    a.optim.betas.append(1.0)
    assert b.optim.betas == [0.9, 0.999]


def test_unknown_key_names_path_and_suggests_closest(tmp_path):
    with pytest.raises(
            InputError, match=r"unknown config key 'optim.lrr'; did you mean 'optim.lr'"):
        load_config(Schema, write(tmp_path, "optim:\n  lrr: 0.1\n"))


def test_wrong_type_names_key_value_and_expectation():
    with pytest.raises(InputError, match=r"'epochs': got 'ten', expected an integer"):
        load_config(Schema, None, ["epochs=ten"])
    with pytest.raises(
            InputError, match=r"'optim.name': got 'rmsprop', expected one of 'sgd', 'adam'"):
        load_config(Schema, None, ["optim.name=rmsprop"])
    with pytest.raises(InputError, match=r"'layers\[1\]': got 'x'"):
        load_config(Schema, None, ["layers=[1, x]"])


def test_out_of_range_value_is_rejected():
    with pytest.raises(InputError, match=r"'optim.lr': got 0.0, expected a value > 0"):
        load_config(Schema, None, ["optim.lr=0"])


def test_malformed_yaml_names_file_and_line(tmp_path):
    path = write(tmp_path, "epochs: 3\noptim: [unclosed\n")
    with pytest.raises(InputError, match=r"malformed YAML in .*cfg.yml at line \d+"):
        load_config(Schema, path)


def test_yaml_is_loaded_safely(tmp_path):
    path = write(tmp_path, "epochs: !!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(InputError, match="malformed YAML"):
        load_config(Schema, path)


def test_top_level_must_be_a_mapping(tmp_path):
    with pytest.raises(InputError, match="expected a mapping"):
        load_config(Schema, write(tmp_path, "- 1\n- 2\n"))


def test_bad_override_syntax():
    with pytest.raises(InputError, match="expected KEY.PATH=VALUE"):
        apply_override({}, "epochs")
    with pytest.raises(InputError, match="is a value, not a section"):
        apply_override({"epochs": 3}, "epochs.x=1")


def test_missing_config_file():
    with pytest.raises(InputError, match="config file not found: nowhere/none.yml"):
        resolve_config_path("nowhere/none.yml")


def test_packaged_config_found_by_name_without_suffix(tmp_path, monkeypatch):
    import mdcli.config as config

    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "demo.yml").write_text("epochs: 2\n")
    monkeypatch.setattr(config, "config_roots", lambda: [tmp_path])
    assert load_config(Schema, "train/demo").epochs == 2


def test_to_dict_writes_paths_as_text_at_any_depth():
    from pathlib import Path

    import yaml

    @dataclass(frozen=True)
    class Source:
        path: Path | None = Path("a/b.h5")

    @dataclass
    class Saved:
        seed: int = 0
        source: Source = field(default_factory=Source)
        out: Path = Path("runs")

    text = yaml.safe_dump(to_dict(Saved()))  # safe_dump refuses Path objects
    assert yaml.safe_load(text) == {"seed": 0, "source": {"path": "a/b.h5"}, "out": "runs"}
