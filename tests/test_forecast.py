"""Forecast evaluation: the other-storm control, skill figures, AUROC, seeds, eval_samples.h5,
each against an independent calculation."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch
from scipy.ndimage import map_coordinates
from sklearn.metrics import roc_auc_score

from mdcli.data.tc_dataset import TCWindows
from mdcli.diffusion.objectives import DDPMObjective
from mdcli.errors import InputError
from mdcli.forecast.config import EvalConfig, SamplingConfig
from mdcli.forecast.evaluate import era5_value, gain
from mdcli.forecast.forecasters import Forecaster
from mdcli.forecast.heldout import load_heldout, spread_indices, storm_derangement
from mdcli.forecast.response import auroc, correlation
from mdcli.forecast.samples_file import write_eval_samples
from mdcli.forecast.seeds import aggregate, mean_se, paired_difference
from mdcli.forecast.skill import (
    baseline_skill,
    baselines,
    denoising_skill,
    extrapolation,
    persistence,
    pooled,
    sample_skill,
    shift_frames,
    summaries_of,
)
from mdcli.forecast.storms import storm_centre
from mdcli.training.distill import lead_closed

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tc_file(tmp_path_factory):
    from mdcli.data.synth_tc import generate_from_config

    path = tmp_path_factory.mktemp("tc") / "tc.h5"
    return generate_from_config("data/tc_tiny", path, ["n_storms=20", "frames=6"])


@pytest.fixture(scope="module")
def windows(tc_file):
    return TCWindows(tc_file, "train", cond_frames=2, pred_frames=1, era5_steps=2)


def test_other_storm_era5_is_another_storms_field_at_the_same_time(tc_file, windows):
    held = load_heldout(windows)
    assert (held.partner != held.storm).all()
    assert len(set(held.partner.tolist())) == len(set(held.storm.tolist()))  # a permutation
    with h5py.File(tc_file) as h5:
        z = h5["era5/z"][:]
        for i in range(len(held)):
            t = int(held.time[i])  # first target frame; ERA5 ends at t - 1
            want = z[int(held.partner[i]), t - 2:t]
            np.testing.assert_array_equal(held.era5_other[i, 2].numpy(), want)
            own = z[int(held.storm[i]), t - 2:t]
            np.testing.assert_array_equal(held.era5[i, 2].numpy(), own)
    # the response's swap: the same partner's environment, this storm's own low
    from mdcli.data.synth_tc import environment_swapped_era5, synth_config

    times = held.time.numpy()[:, None] + np.array([-2, -1])
    want = environment_swapped_era5(synth_config(windows.attrs), held.storm.numpy(),
                                    held.partner.numpy(), times)
    np.testing.assert_array_equal(held.era5_swap.numpy(), want)
    np.testing.assert_array_equal(held.era5_swap[:, 0], held.era5_other[:, 0])  # SST: no storm
    assert (held.era5_swap[:, 1] - held.era5_other[:, 1]).abs().max() > 0.1  # MSL: own low


@pytest.mark.parametrize("change", ["seed", "unknown_key"])
def test_the_environment_swap_is_dropped_when_the_generator_cannot_rerun_the_file(
        tc_file, tmp_path, change):
    import shutil

    path = shutil.copy(tc_file, tmp_path / "tc.h5")
    with h5py.File(path, "r+") as h5:
        cfg = json.loads(h5.attrs["config"])
        if change == "seed":
            cfg["seed"] += 1  # another simulation: its fields are not the file's
        else:
            cfg["no_such_key"] = 1  # a config this version does not read
        h5.attrs["config"] = json.dumps(cfg)
    held = load_heldout(TCWindows(path, "train", cond_frames=2, pred_frames=1, era5_steps=2))
    assert held.era5_swap is None and held.era5_other is not None


def test_derangement_needs_two_storms_and_has_no_fixed_point():
    mapping = storm_derangement(np.array([5, 5, 2, 9, 2]))
    assert mapping == {2: 5, 5: 9, 9: 2}
    with pytest.raises(InputError, match="at least 2"):
        storm_derangement(np.array([3, 3]))


def test_spread_indices_cover_the_split_evenly():
    assert spread_indices(10, None).tolist() == list(range(10))
    assert spread_indices(10, 3).tolist() == [0, 4, 9]  # round(4.5) = 4 (banker's rounding)


def test_pooled_equals_block_means():
    x = torch.randn(2, 3, 8, 8)
    want = x.numpy().reshape(2, 3, 2, 4, 2, 4).mean(axis=(3, 5))
    np.testing.assert_allclose(pooled(x, 4).numpy(), want, rtol=1e-5, atol=1e-6)


class _Oracle(torch.nn.Module):
    """Returns the true clean frames: a perfect x0-predictor."""

    def __init__(self, target: torch.Tensor) -> None:
        super().__init__()
        self.target = target

    def forward(self, x, level, cond, era5=None):
        return self.target[: x.shape[0]] if x.shape[0] == len(self.target) else self._rows(x)

    def _rows(self, x):
        raise AssertionError("batch mismatch")


def test_a_perfect_x0_network_has_zero_clean_error_and_the_eps_mse_of_the_formula(windows):
    held = load_heldout(windows)
    objective = DDPMObjective(100, prediction="x0")
    cfg = EvalConfig(noise_levels=3, top_levels=1, batch_size=len(held))
    skill = denoising_skill({"oracle": Forecaster(_Oracle(held.target), "true")}, held,
                            objective, cfg, torch.device("cpu"))["oracle"]
    assert skill["clean_mse_top"] == pytest.approx(0.0, abs=1e-10)
    assert max(skill["eps_mse"]) == pytest.approx(0.0, abs=1e-8)  # eps follows from x0 exactly
    assert len(skill["noise_level"]) == 3


def test_persistence_skill_is_the_mse_of_the_last_condition_frame(windows):
    held = load_heldout(windows)
    got = baseline_skill(persistence(held), held, 4)
    last, target = held.cond[:, -1].numpy(), held.target[:, 0].numpy()
    assert got["clean_mse_top"] == pytest.approx(float(((last - target) ** 2).mean()), rel=1e-6)
    blocks = lambda a: a.reshape(len(a), 8, 4, 8, 4).mean(axis=(2, 4))  # noqa: E731
    want = float(((blocks(last) - blocks(target)) ** 2).mean())
    assert got["clean_mse_pooled_top"] == pytest.approx(want, rel=1e-6)


def test_shift_frames_moves_a_blob_by_fractional_pixels():
    rows, cols = np.mgrid[0:32, 0:32].astype(np.float64)
    blob = lambda r, c: np.exp(-((rows - r) ** 2 + (cols - c) ** 2) / (2 * 3.0 ** 2))  # noqa: E731
    frames = torch.tensor(np.stack([blob(12.0, 15.0), blob(20.0, 9.0)])[:, None])
    shift = torch.tensor([[1.5, -2.25], [-3.0, 4.0]], dtype=torch.float64)
    got = shift_frames(frames, shift)[:, 0].numpy()
    # scipy's linear interpolation at the source positions, edges continued
    want = map_coordinates(frames[0, 0].numpy(), [rows - 1.5, cols + 2.25], order=1,
                           mode="nearest")
    np.testing.assert_allclose(got[0], want, atol=1e-12)
    np.testing.assert_allclose(got[0], blob(13.5, 12.75), atol=3e-2)  # the moved blob
    # integer shifts are exact (away from the border)
    np.testing.assert_allclose(got[1][:-3, 4:], blob(17.0, 13.0)[:-3, 4:], atol=1e-12)
    np.testing.assert_allclose(shift_frames(frames, torch.zeros(2, 2, dtype=torch.float64)),
                               frames, atol=1e-12)


def test_extrapolation_moves_the_last_frame_on_by_the_last_displacement(windows):
    held = load_heldout(windows)
    frames = extrapolation(held)
    centre = lambda f: summaries_of(f, None)["center"][:, 0]  # noqa: E731
    last, before = centre(held.cond[:, -1:]), centre(held.cond[:, -2:-1])
    moved = centre(frames)
    # the extracted centre of the forecast is the last centre plus the last displacement
    # (up to interpolation smoothing and the border)
    inside = (np.abs(last - 16) < 10).all(axis=1)
    np.testing.assert_allclose(moved[inside], (2 * last - before)[inside], atol=0.35)
    assert set(baselines(held)) == {"persistence", "extrapolation"}
    one = load_heldout(TCWindows(windows.path, "train", cond_frames=1, pred_frames=1,
                                 era5_steps=2))
    assert extrapolation(one) is None and set(baselines(one)) == {"persistence"}


def test_sample_skill_of_the_true_frames_is_the_extractors_own_error(windows):
    held = load_heldout(windows)
    got = sample_skill(held.target, held, 4)
    assert got["pixel_mse"] == 0 and got["coldness_error_k"] == 0
    assert got["cloudy_area_error"] == 0
    centre = summaries_of(held.target, held.pixel_km)["center"]
    want = np.linalg.norm(centre - held.center.numpy(), axis=-1).mean()
    assert got["track_error_px"] == pytest.approx(want)
    assert got["track_error_km"] == pytest.approx(want * held.pixel_km)
    shifted = sample_skill(torch.roll(held.target, 3, dims=-1), held, 4)
    assert shifted["track_error_px"] > got["track_error_px"] + 1.5
    assert got["track_error_ensemble_px"] == got["track_error_px"]  # one member


def test_ensemble_figures_are_member_means_and_the_mean_centre_track(windows):
    held = load_heldout(windows)
    members = torch.stack([torch.roll(held.target, 3, dims=-1),
                           torch.roll(held.target, -3, dims=-1), held.target + 0.2])
    got = sample_skill(members, held, 4)
    alone = [sample_skill(m, held, 4) for m in members]
    for key in ("pixel_mse", "pooled_mse", "track_error_px", "coldness_error_k",
                "cloudy_area_error"):
        assert got[key] == pytest.approx(np.mean([a[key] for a in alone]), rel=1e-6)
    centres = np.stack([storm_centre(m.flatten(0, 1).numpy()).reshape(*m.shape[:2], 2)
                        for m in members])
    want = np.linalg.norm(centres.mean(0) - held.center.numpy(), axis=-1).mean()
    assert got["track_error_ensemble_px"] == pytest.approx(want)
    # shifts either way average out: the mean centre is far better than each member
    assert got["track_error_ensemble_px"] < 0.6 * got["track_error_px"]


def test_auroc_equals_scikit_learn_with_ties():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 4, 40).astype(float)
    labels = rng.integers(0, 2, 40).astype(bool)
    assert auroc(scores, labels) == pytest.approx(roc_auc_score(labels, scores))
    assert np.isnan(auroc(scores, np.zeros(40, bool)))


def test_correlation_equals_numpy():
    a, b = np.random.default_rng(1).normal(size=(2, 30, 2))
    assert correlation(a, b) == pytest.approx(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def test_mean_and_standard_error_over_seeds():
    out = mean_se([1.0, 2.0, 4.0])
    assert out["mean"] == pytest.approx(7 / 3)
    assert out["se"] == pytest.approx(np.std([1, 2, 4], ddof=1) / np.sqrt(3))
    assert np.isnan(mean_se([3.0])["se"])
    tables = [{"a": {"x": 1.0}, "b": {"x": 2.0}}, {"a": {"x": 2.0}, "b": {"x": 5.0}}]
    agg = aggregate(tables)
    assert agg["b"]["x"]["mean"] == 3.5 and agg["a"]["x"]["n"] == 2
    diff = paired_difference(tables, "a", "b", "x")
    assert diff["mean"] == 2.0 and diff["se"] == pytest.approx(1.0)
    assert diff["z"] == pytest.approx(2.0)


def test_gains_and_the_share_of_the_lead_closed():
    assert gain(0.8, 1.0) == pytest.approx(0.2)
    table = {"teacher": {"clean_mse_pooled_top": 1.0, "track_error_px": 1.0},
             "teacher_other_storm_era5": {"clean_mse_pooled_top": 2.0, "track_error_px": 4.0},
             "student": {"clean_mse_pooled_top": 1.5, "track_error_px": 2.0},
             "student_no_distill": {"clean_mse_pooled_top": 2.0, "track_error_px": 3.0}}
    assert era5_value(table) == {"other_storm": {"clean_mse_pooled_top": 0.5,
                                                 "track_error_px": 0.75}}
    assert lead_closed(table) == {"clean_mse_pooled_top": 0.5, "track_error_px": 0.5}


def test_eval_samples_file_has_the_documented_layout(windows, tmp_path):
    held = load_heldout(windows)
    one = {"teacher": (held.target + 0.1)[None], "student": (held.target - 0.1)[None]}
    path = write_eval_samples(tmp_path / "eval_samples.h5", held, one,
                              SamplingConfig(method="ddim", steps=7), seeds=[99])
    with h5py.File(path) as h5:
        n, p = held.target.shape[:2]
        assert h5["cond"].shape == tuple(held.cond.shape)
        assert h5["target"].shape == h5["samples/teacher"].shape == (n, p, 32, 32)
        assert h5["center"].shape == (n, p, 2)
        assert h5["storm_id"].shape == h5["time"].shape == (n,)
        np.testing.assert_allclose(h5["samples/student"][:], one["student"][0].numpy())
        assert (h5.attrs["sampler"], h5.attrs["steps"], h5.attrs["seed"]) == ("ddim", 7, 99)
        assert h5.attrs["members"] == 1 and "ensemble" not in h5
    two = {"student": torch.stack([held.target, held.target - 0.3])}
    write_eval_samples(path, held, two, SamplingConfig(), seeds=[5, 6])
    with h5py.File(path) as h5:
        np.testing.assert_allclose(h5["ensemble/student"][1], (held.target - 0.3).numpy())
        np.testing.assert_allclose(h5["samples/student"][:], held.target.numpy())
        assert (h5.attrs["seed"], h5.attrs["members"]) == (5, 2)


class _ShiftByZ(torch.nn.Module):
    """An x0-predicting "teacher" whose forecast is a blob moved right by 4 pixels per unit
    of the window's mean normalised Z, whatever the noisy input."""

    def __init__(self, uses_era5: bool = True) -> None:
        super().__init__()
        self.uses_era5 = uses_era5
        grid = torch.arange(32.0)
        self.rows, self.cols = grid.view(32, 1), grid.view(1, 32)

    def forward(self, x, level, cond, era5):
        shift = 4.0 * era5[:, 2].mean(dim=(1, 2, 3)) if self.uses_era5 else 0.0 * level
        col = 15.0 + shift.view(-1, 1, 1)
        blob = torch.exp(-((self.rows - 15.0) ** 2 + (self.cols - col) ** 2) / 18.0)
        return (2.0 * blob - 1.0).unsqueeze(1).expand_as(x)


def test_response_is_the_analytic_shift_and_zero_for_a_network_that_ignores_era5(windows):
    from mdcli.forecast.response import teacher_responses

    held = load_heldout(windows, 12)
    objective = DDPMObjective(50, prediction="x0")
    sampling = SamplingConfig(method="ddim", steps=3)
    cpu = torch.device("cpu")
    got = teacher_responses(Forecaster(_ShiftByZ()), held, objective, sampling, cpu, [5, 6])
    assert held.era5_swap is not None  # synthetic: the other storm's environment is swapped
    want = 4.0 * (held.era5_swap[:, 2] - held.era5[:, 2]).mean(dim=(1, 2, 3)).numpy()
    np.testing.assert_allclose(got["z"]["center"][:, 1], want, atol=0.05)
    np.testing.assert_allclose(got["z"]["center"][:, 0], 0.0, atol=0.05)
    assert np.abs(got["sst"]["center"]).max() == 0.0  # other swaps leave Z and the noise alone
    still = teacher_responses(Forecaster(_ShiftByZ(False)), held, objective, sampling, cpu, [5])
    assert all(np.abs(v).max() == 0.0 for per in still.values() for v in per.values())


def test_a_last_step_swap_changes_only_the_last_era5_step(windows):
    from mdcli.forecast.response import swapped_era5, teacher_responses

    held = load_heldout(windows, 12)
    assert held.era5.shape[2] >= 2
    swapped = swapped_era5(held, 2, "last")
    torch.testing.assert_close(swapped[:, :, :-1], held.era5[:, :, :-1], rtol=0, atol=0)
    torch.testing.assert_close(swapped[:, 2, -1], held.era5_swap[:, 2, -1], rtol=0, atol=0)
    torch.testing.assert_close(swapped[:, [0, 1, 3]], held.era5[:, [0, 1, 3]], rtol=0, atol=0)
    got = teacher_responses(Forecaster(_ShiftByZ()), held, DDPMObjective(50, prediction="x0"),
                            SamplingConfig(method="ddim", steps=3), torch.device("cpu"), [5],
                            steps="last")
    change = held.era5_swap[:, 2, -1] - held.era5[:, 2, -1]  # the blob's shift is a mean over steps
    want = 4.0 * change.mean(dim=(1, 2)).numpy() / held.era5.shape[2]
    np.testing.assert_allclose(got["z"]["center"][:, 1], want, atol=0.05)


@pytest.mark.parametrize("seeds", ["0,x", "1,1", ","])
def test_quickstart_refuses_bad_seed_lists_before_any_step(run_cli, tmp_path, seeds):
    result = run_cli("quickstart", "--seeds", seeds, "--work-dir", tmp_path)
    assert result.code == 2
    assert "--seeds" in result.err and len(result.err.strip().splitlines()) == 1
    assert not (tmp_path / "train").exists()


def test_an_evaluation_seed_equal_to_the_training_seed_is_refused(run_cli, tc_file, tmp_path):
    result = run_cli("train", "-c", "train/tc_teacher_tiny", "--set", f"data.path={tc_file}",
                     "--seed", "1235", "--work-dir", tmp_path, "--device", "cpu")
    assert result.code == 2
    assert "eval.seed" in result.err and "training seed 1235" in result.err


def test_evaluation_seeds_must_avoid_every_training_seed():
    from mdcli.training.distill import DistillConfig
    from mdcli.training.teacher import check_eval_seed

    cfg = DistillConfig(seed=0)
    check_eval_seed(cfg, (1, 7))
    with pytest.raises(InputError, match="training seed 1236"):
        check_eval_seed(cfg, (1, 1236))  # e.g. the teacher's own training seed
    cfg.eval.members = 8  # ensemble members draw seeds 1234 .. 1241
    with pytest.raises(InputError, match="training seed 1240"):
        check_eval_seed(cfg, (1, 1240))


def test_seeds_report_pairs_each_seeds_student_with_its_own_baseline(tmp_path):
    from mdcli.chain import StepResult
    from mdcli.quickstart import seeds_report

    def run(name: str, ev: dict) -> StepResult:
        return StepResult(name, tmp_path, False, {"eval": ev})

    per_seed = {}
    for seed, (s, b) in enumerate([(1.0, 2.0), (2.0, 2.5), (3.0, 4.5)]):
        teacher = {"clean_estimate": {"teacher": {"clean_mse_pooled_top": 0.5}},
                   "era5_value": {"other_storm": {"clean_mse_pooled_top": 0.1 * seed}},
                   "response": {"auroc": 0.5 + 0.1 * seed, "strongest_driver": {}}}
        student = {"clean_estimate": {"student": {"clean_mse_pooled_top": s},
                                      "student_no_distill": {"clean_mse_pooled_top": b}},
                   "lead_closed": {"clean_mse_pooled_top": 0.2}}
        per_seed[seed] = {"teacher": run("teacher", teacher), "student": run("student", student)}
    rep = seeds_report(per_seed)
    diff = rep["distillation_gain"]["clean_mse_pooled_top"]
    assert diff["mean"] == pytest.approx(1.0)  # (1 + 0.5 + 1.5) / 3
    assert diff["se"] == pytest.approx(np.std([1.0, 0.5, 1.5], ddof=1) / np.sqrt(3))
    assert rep["skill"]["student"]["clean_mse_pooled_top"]["mean"] == pytest.approx(2.0)
    assert rep["era5_value"]["other_storm"]["clean_mse_pooled_top"]["mean"] == pytest.approx(0.1)
    assert rep["response_auroc"]["mean"] == pytest.approx(0.6)


class _Mix(torch.nn.Module):
    """A tiny x0-predicting network with one weight whose output also follows the noisy
    input, so that its sampled frames depend on the starting noise."""

    def __init__(self, scale: float = 0.9) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(scale))

    def forward(self, x, level, cond, era5=None):
        return self.scale * cond[:, -1:].expand_as(x) + 0.3 * x


def _evaluate(models, held, cfg, sampling, path, reuse=None):
    from mdcli.forecast.evaluate import evaluate_forecasts

    return evaluate_forecasts(models, held, DDPMObjective(50, prediction="x0"), cfg, sampling,
                              torch.device("cpu"), path, {}, {}, reuse=reuse)


@pytest.mark.parametrize("members", [2, 1])
def test_a_second_evaluation_reads_back_the_frames_of_unchanged_models(windows, tmp_path,
                                                                       monkeypatch, members):
    from mdcli.forecast import evaluate as evaluate_module
    from mdcli.forecast.config import EvalConfig

    held = load_heldout(windows, 12)
    sampling = SamplingConfig(method="ddim", steps=3)
    cfg = EvalConfig(noise_levels=2, top_levels=1, members=members)
    models = {"teacher": Forecaster(_Mix()), "student": Forecaster(_Mix(0.7), None)}
    first = _evaluate(models, held, cfg, sampling, tmp_path / "a")
    sampled = []
    real = evaluate_module.sample_forecasts
    monkeypatch.setattr(evaluate_module, "sample_forecasts",
                        lambda fresh, *a, **k: sampled.append(list(fresh)) or real(fresh, *a,
                                                                                    **k))
    with torch.no_grad():
        models["student"].net.scale.fill_(0.8)  # changed weights: sampled afresh
    again = _evaluate(models, held, cfg, sampling, tmp_path / "b", tmp_path / "a" /
                      "eval_samples.h5")
    assert sampled == [["student"]] * members  # one call per member, the teacher read back
    assert again["samples"]["teacher"] == first["samples"]["teacher"]
    assert again["samples"]["student"] != first["samples"]["student"]
    key = "ensemble/teacher" if members > 1 else "samples/teacher"
    with h5py.File(tmp_path / "a" / "eval_samples.h5") as a, \
            h5py.File(tmp_path / "b" / "eval_samples.h5") as b:
        np.testing.assert_array_equal(a[key][()], b[key][()])  # every member, in order
        if members > 1:
            assert not np.array_equal(a[key][0], a[key][1])  # the members differ
        prints = json.loads(b.attrs["fingerprints"])
    assert set(prints) == {"teacher", "student"}
    sampled.clear()
    other = SamplingConfig(method="ddim", steps=4)  # another sampler: nothing is reused
    _evaluate(models, held, cfg, other, tmp_path / "c", tmp_path / "b" / "eval_samples.h5")
    assert sampled == [["teacher", "student"]] * members


def test_damaged_or_foreign_sample_files_are_not_reused(windows, tmp_path):
    from mdcli.forecast.config import EvalConfig
    from mdcli.forecast.samples_file import reusable_ensembles

    held = load_heldout(windows, 12)
    cfg = EvalConfig(noise_levels=2, top_levels=1, members=2)
    _evaluate({"teacher": Forecaster(_Mix())}, held, cfg, SamplingConfig(steps=3), tmp_path)
    path = tmp_path / "eval_samples.h5"
    with h5py.File(path) as h5:
        prints = json.loads(h5.attrs["fingerprints"])
    shape = (2, *held.target.shape)
    assert set(reusable_ensembles(path, prints, shape)) == {"teacher"}
    assert reusable_ensembles(path, prints, (3, *held.target.shape)) == {}  # other members
    (tmp_path / "bad.h5").write_bytes(b"not hdf5")
    assert reusable_ensembles(tmp_path / "bad.h5", prints, shape) == {}
    with h5py.File(path, "r+") as h5:
        h5["ensemble/teacher"][0, 0, 0, 0, 0] += 1e-3  # one value changed after writing
    assert reusable_ensembles(path, prints, shape) == {}
    with h5py.File(path, "r+") as h5:
        h5.attrs["fingerprints"] = "[1, 2]"  # not a mapping
    assert reusable_ensembles(path, prints, shape) == {}


def test_the_fingerprint_changes_with_everything_that_changes_the_frames(windows):
    import dataclasses

    from mdcli.forecast.samples_file import evaluation_digest, fingerprint

    held = load_heldout(windows, 12)
    objective, sampling = DDPMObjective(50, prediction="x0"), SamplingConfig(steps=3)
    cpu = torch.device("cpu")
    model = Forecaster(_Mix())

    def of(model=model, held=held, objective=objective, sampling=sampling, seeds=(1, 2),
           batch_size=32):
        return fingerprint(model, evaluation_digest(held, objective, sampling, list(seeds),
                                                    batch_size, cpu))

    base = of()
    assert of(model=Forecaster(_Mix())) == base
    variants = [
        of(model=Forecaster(_Mix(0.9 + 1e-6))),
        of(model=Forecaster(model.net, "zero")),
        of(held=dataclasses.replace(held, cond=held.cond + 1e-6)),
        of(objective=DDPMObjective(50, prediction="v")),
        of(sampling=SamplingConfig(steps=3, clip=None)),
        of(seeds=(2, 1)),
        of(batch_size=16),
    ]
    assert len(set(variants) | {base}) == len(variants) + 1
