"""Synthetic cyclones: layout, physics, the causal links, forks and the information budget,
determinism and ``mdcli data``."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch
from sklearn.linear_model import Ridge
from sklearn.metrics import r2_score

from mdcli.config import load_config
from mdcli.data.synth_tc import (
    SynthTCConfig,
    category,
    environment_swapped_era5,
    forked_response,
    generate_from_config,
    pressure_deficit,
    write_synth_tc,
)
from mdcli.errors import InputError
from mdcli.forecast.storms import storm_summaries
from mdcli.storage.checkpoint import save_checkpoint

VARS = ("sst", "msl", "z", "r")
SUMMARIES = ("motion", "coldness", "cloudy_area")
GRAVITY, CORIOLIS = 9.81, 5.0e-5  # the generator's documented constants (f at 20 N)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The packaged tiny config: 48 storms x 16 frames x 32 x 32."""
    path = tmp_path_factory.mktemp("tc") / "tiny.h5"
    generate_from_config("data/tc_tiny", path)
    with h5py.File(path, "r") as h5:
        data = {k: h5[k][()] for k in ("ir", "era5/sst", "era5/msl", "era5/z", "era5/r",
                                        "meta/center", "meta/intensity", "meta/pressure",
                                        "meta/category", "meta/rmax", "meta/rainband_extent",
                                        "meta/storm_id")}
        data["attrs"] = dict(h5.attrs)
        data["msl_attrs"] = dict(h5["era5/msl"].attrs)
    data["path"] = path
    return data


def small_cfg(**values) -> SynthTCConfig:
    base = {"n_storms": 3, "frames": 4, "size": 32}
    return load_config(SynthTCConfig, None, [f"{k}={v}" for k, v in {**base, **values}.items()])


def weighted_mean(field: np.ndarray, centre: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian-weighted mean of ``field [S,T,H,W]`` around ``centre [S,T,2]`` (pixels)."""
    rows, cols = np.mgrid[0:field.shape[-2], 0:field.shape[-1]]
    dist2 = (rows - centre[..., 0, None, None]) ** 2 + (cols - centre[..., 1, None, None]) ** 2
    weight = np.exp(-dist2 / (2 * sigma ** 2))
    return (weight * field).sum((-1, -2)) / weight.sum((-1, -2))


def holdout_r2(features: list[np.ndarray], target: np.ndarray, times: np.ndarray) -> float:
    """R^2 on the last 30% of storms of a ridge fit on the first 70% (no features: the mean)."""
    n_storms = target.shape[0]
    y = target[:, times].ravel()
    train = np.repeat(np.arange(n_storms) < int(0.7 * n_storms), len(times))
    if not features:
        return r2_score(y[~train], np.full((~train).sum(), y[train].mean()))
    x = np.stack([f[:, times].ravel() for f in features], axis=1)
    model = Ridge(alpha=1e-3).fit(x[train], y[train])
    return r2_score(y[~train], model.predict(x[~train]))


# ----------------------------------------------------------------------------- layout
def test_layout_shapes_dtypes_and_attrs(tiny):
    s, t, n = 48, 16, 32
    assert tiny["ir"].shape == (s, t, n, n) and tiny["ir"].dtype == np.float32
    assert tiny["ir"].min() >= -1 and tiny["ir"].max() <= 1
    for v in VARS:
        field = tiny[f"era5/{v}"]
        assert field.shape == (s, t, n, n) and field.dtype == np.float32
        assert abs(float(field.mean())) < 0.5 and 0.3 < float(field.std()) < 2.0, v
    assert tiny["meta/center"].shape == (s, t, 2) and tiny["meta/center"].dtype == np.float32
    assert tiny["meta/intensity"].shape == (s, t) and tiny["meta/pressure"].shape == (s, t)
    assert tiny["meta/category"].dtype.kind == "i" and tiny["meta/storm_id"].dtype.kind == "i"
    assert np.array_equal(tiny["meta/storm_id"], np.arange(s))
    assert set(np.unique(tiny["meta/category"])) >= {0, 1, 2, 3}
    attrs = tiny["attrs"]
    assert attrs["format"] == "mdcli-tc" and attrs["format_version"] == 1
    assert list(attrs["variables"]) == list(VARS) and attrs["seed"] == 0
    assert json.loads(attrs["config"])["n_storms"] == s
    assert tiny["msl_attrs"]["units"] == "hPa" and "normalisation" in tiny["msl_attrs"]
    assert "pixel" in json.loads(attrs["information_budget"])


def test_causal_links_attribute_names_the_true_links(tiny):
    links = json.loads(tiny["attrs"]["causal_links"])
    matrix = np.array(links["matrix"])
    assert links["variables"] == list(VARS) and matrix.shape == (4, 5)
    col = {name: i for i, name in enumerate(links["targets"])}
    row = {name: i for i, name in enumerate(VARS)}
    for var, target in (("sst", "intensity_change"), ("z", "motion_row"), ("z", "motion_col"),
                        ("r", "rainband_extent"), ("msl", "central_pressure")):
        assert matrix[row[var], col[target]] > 0.05, (var, target)
    for var, target in (("sst", "motion_row"), ("z", "intensity_change"),
                        ("sst", "rainband_extent"), ("r", "motion_col")):
        assert matrix[row[var], col[target]] == 0, (var, target)
    assert {(link["variable"], link["target"]) for link in links["links"]} >= {
        ("sst", "intensity_change"), ("z", "motion_row")}


def test_summary_links_name_the_drivers_of_each_forecast_summary(tiny):
    links = json.loads(tiny["attrs"]["causal_links"])["summary_links"]
    assert tuple(links["summaries"]) == SUMMARIES
    support = links["support"]
    assert support["z"] == {"motion": 1, "coldness": 0, "cloudy_area": 0}
    for v in ("sst", "msl", "r"):  # via the intensity (and for r the rain bands)
        assert support[v] == {"motion": 0, "coldness": 1, "cloudy_area": 1}, v
    strength = links["strength"]
    strongest = {k: max(VARS, key=lambda v: strength[v][k]) for k in SUMMARIES}
    assert strongest == {"motion": "z", "coldness": "sst", "cloudy_area": "r"}
    # z -> cloudy area is on no equation's direct path, but the storm's displacement changes
    # what of its cloud the frame holds (0.38 at the tiny field persistence 0.9, 0.19 at 0.7);
    # every other unlinked response is below every linked one
    linked = [strength[v][k] for v in VARS for k in SUMMARIES if support[v][k]]
    unlinked = [strength[v][k] for v in VARS for k in SUMMARIES
                if not support[v][k] and (v, k) != ("z", "cloudy_area")]
    assert min(linked) > max(unlinked)
    assert strength["z"]["cloudy_area"] < strength["z"]["motion"] / 3
    state = links["state_strength"]  # the true state: exactly zero off the equations' paths
    assert state["z"]["intensity"] == state["z"]["rainband_extent"] == 0
    assert all(state[v]["motion"] == 0 for v in ("sst", "msl", "r"))
    assert state["r"]["rainband_extent"] > 0.5 and state["sst"]["intensity"] > 0.5


def test_category_and_pressure_closed_forms():
    assert category(np.array([20.0, 32.9, 33.0, 42.9, 43.0, 50.0, 58.0, 69.9, 70.0])).tolist() \
        == [0, 0, 1, 1, 2, 3, 4, 4, 5]
    winds = np.array([20.0, 45.0, 70.0])
    assert np.allclose(3.45 * pressure_deficit(winds) ** 0.644, winds)


# ----------------------------------------------------------------------------- physics
def test_eye_is_warmer_than_the_eyewall(tiny):
    ir, centre, rmax = tiny["ir"], tiny["meta/center"], tiny["meta/rmax"]
    s, t = np.nonzero(tiny["meta/category"] >= 2)
    assert len(s) > 20
    rows, cols = np.mgrid[0:32, 0:32]
    strong = np.hypot(rows - centre[s, t, 0, None, None], cols - centre[s, t, 1, None, None])
    frames = ir[s, t]
    eye = np.where(strong <= 0.75, frames, np.nan)
    wall = np.where(np.abs(strong - rmax[s, t, None, None]) <= 0.6, frames, np.nan)
    eye_ir, wall_ir = np.nanmean(eye, axis=(1, 2)), np.nanmean(wall, axis=(1, 2))
    # high normalised IR = cold cloud tops: the eyewall is colder (higher) than the eye
    assert np.mean(wall_ir > eye_ir + 0.2) > 0.9
    dist = np.hypot(rows - centre[..., 0, None, None], cols - centre[..., 1, None, None])
    weak = tiny["meta/intensity"] < 25
    assert np.mean(ir[weak][dist[weak] <= 0.75]) > 0  # weak storms: a cloud-filled centre
    # the frames show intensity: stronger storms have larger areas of cold cloud tops
    cold_area = (ir > 0.6).sum((2, 3))
    assert np.corrcoef(cold_area.ravel(), tiny["meta/intensity"].ravel())[0, 1] > 0.6


def test_intensity_shows_in_eye_contrast_and_cloud_cover(tiny):
    ir, centre, rmax, v = (tiny[k] for k in ("ir", "meta/center", "meta/rmax", "meta/intensity"))
    rows, cols = np.mgrid[0:32, 0:32]
    dist = np.hypot(rows - centre[..., 0, None, None], cols - centre[..., 1, None, None])
    eye = np.nanmean(np.where(dist <= 0.75, ir, np.nan), axis=(2, 3))
    wall = np.nanmean(np.where(np.abs(dist - rmax[..., None, None]) <= 0.6, ir, np.nan),
                      axis=(2, 3))
    contrast = wall - eye  # grows as the eye clears and widens and the eyewall cools
    assert contrast[v >= 50].mean() > contrast[v < 30].mean() + 0.8
    assert np.corrcoef(contrast.ravel(), v.ravel())[0, 1] > 0.85
    cloudy = (ir > 0).sum((2, 3))  # the CDO widens with intensity
    assert np.corrcoef(cloudy.ravel(), v.ravel())[0, 1] > 0.7


def test_texture_amplitude_zero_leaves_clear_sky_flat_but_for_instrument_noise(tmp_path):
    cfg = small_cfg(n_storms=4, frames=3, **{"physics.texture_amplitude": 0,
                                             "physics.ir_noise": 0.5})
    path = write_synth_tc(cfg, tmp_path / "tc.h5")
    with h5py.File(path) as h5:
        ir, centre = h5["ir"][()], h5["meta/center"][()]
    rows, cols = np.mgrid[0:32, 0:32]
    dist = np.hypot(rows - centre[..., 0, None, None], cols - centre[..., 1, None, None])
    clear = ir[dist > 16]  # beyond the largest rain-band extent (0.45 domain = 14.4 px)
    assert clear.mean() == pytest.approx((240 - 297) / 60, abs=0.002)
    assert clear.std() == pytest.approx(0.5 / 60, rel=0.1)


def test_msl_minimum_at_the_centre_and_tracks_intensity(tiny):
    msl, centre = tiny["era5/msl"], tiny["meta/center"]
    rows, cols = np.mgrid[0:32, 0:32]
    dist = np.hypot(rows - centre[..., 0, None, None], cols - centre[..., 1, None, None])
    near = np.where(dist <= 0.2 * 32, msl, np.inf).reshape(*msl.shape[:2], -1)
    assert np.take_along_axis(dist.reshape(near.shape), near.argmin(-1)[..., None], -1).max() <= 1
    # the storm's low is the domain's lowest pressure, but for a few weak depressions
    flat = msl.reshape(*msl.shape[:2], -1)
    lowest = np.take_along_axis(dist.reshape(flat.shape), flat.argmin(-1)[..., None], -1)[..., 0]
    assert np.all(lowest[tiny["meta/intensity"] >= 20] <= 1)
    hpa = flat.min(-1) * tiny["msl_attrs"]["scale"] + tiny["msl_attrs"]["offset"]
    assert np.corrcoef(hpa.ravel(), tiny["meta/pressure"].ravel())[0, 1] > 0.97
    assert np.corrcoef(tiny["meta/intensity"].ravel(), tiny["meta/pressure"].ravel())[0, 1] < -0.95


# ----------------------------------------------------------------------------- causal links
def test_sst_improves_the_next_intensity_change_beyond_past_frames(tiny):
    v = tiny["meta/intensity"]
    change = np.roll(v, -1, axis=1) - v
    past = [v, np.roll(v, 1, axis=1), np.roll(v, 2, axis=1)]  # intensities at t, t-1, t-2
    sst = weighted_mean(tiny["era5/sst"], tiny["meta/center"], sigma=0.08 * 32)
    times = np.arange(2, v.shape[1] - 1)
    none = holdout_r2([], change, times)
    with_past = holdout_r2(past, change, times)
    with_sst = holdout_r2([*past, sst], change, times)
    assert none < 0.05 < 0.2 < with_past  # intensity trends persist: past frames hint
    assert with_sst > with_past + 0.25, (with_past, with_sst)  # but SST tells far more


def test_z_gradient_steers_the_next_motion_better_than_past_motion(tiny):
    centre = tiny["meta/center"]
    motion = np.roll(centre, -1, axis=1) - centre
    past = [centre[..., k] - np.roll(centre, 1, axis=1)[..., k] for k in (0, 1)]
    grad = [weighted_mean(g, centre, sigma=0.1 * 32)
            for g in np.gradient(tiny["era5/z"], axis=(2, 3))]
    times = np.arange(1, centre.shape[1] - 1)
    for k in (0, 1):
        none = holdout_r2([], motion[..., k], times)
        with_past = holdout_r2(past, motion[..., k], times)
        with_z = holdout_r2([*past, *grad], motion[..., k], times)
        assert none < 0.05 and with_past > 0.2, (k, none, with_past)  # steering persists
        # tiny field persistence 0.9: past motion explains about 0.6, the Z gradient adds ~0.17
        assert with_z > with_past + 0.1, (k, with_past, with_z)


def test_msl_and_r_add_to_next_pressure_and_rain_bands(tiny):
    v, pressure = tiny["meta/intensity"], tiny["meta/pressure"]
    times = np.arange(1, v.shape[1] - 1)
    past = [v, np.roll(v, 1, axis=1)]
    central_msl = tiny["era5/msl"].reshape(*v.shape, -1).min(-1)
    nxt = np.roll(pressure, -1, axis=1)
    with_past = holdout_r2(past, nxt, times)
    assert 1 - holdout_r2([*past, central_msl], nxt, times) < 0.8 * (1 - with_past)
    extent = tiny["meta/rainband_extent"]
    rows, cols = np.mgrid[0:32, 0:32]
    centre = tiny["meta/center"]
    dist = np.hypot(rows - centre[..., 0, None, None], cols - centre[..., 1, None, None])
    ring = np.exp(-0.5 * ((dist - 0.25 * 32) / (0.07 * 32)) ** 2)
    humidity = (ring * tiny["era5/r"]).sum((-1, -2)) / ring.sum((-1, -2))
    nxt = np.roll(extent, -1, axis=1)
    with_past = holdout_r2([extent], nxt, times)  # the band extent persists
    with_r = holdout_r2([extent, humidity], nxt, times)
    assert with_past > 0.5 and 1 - with_r < 0.3 * (1 - with_past), (with_past, with_r)


# ----------------------------------------------------------------------------- forks
def test_forked_response_reruns_the_file_exactly(tmp_path):
    cfg = small_cfg(seed=5)
    path = write_synth_tc(cfg, tmp_path / "tc.h5")
    forked = forked_response(cfg, np.array([1, 2, 0]), frames=True)
    with h5py.File(path) as h5:
        ir, centre = h5["ir"][()], h5["meta/center"][()]
        intensity, extent = h5["meta/intensity"][()], h5["meta/rainband_extent"][()]
    base = forked["base"]
    assert np.array_equal(base["ir"], ir[:, 1:])  # the true step t -> t+1 is the file's
    assert np.allclose(base["true_center"], centre[:, 1:], atol=1e-5)
    assert np.allclose(base["intensity"], intensity[:, 1:], atol=1e-4)
    assert np.allclose(base["rainband_extent"], extent[:, 1:], atol=1e-5)
    summaries = storm_summaries(ir[:, 1:].reshape(-1, 32, 32), pixel_km=2500 / 32)
    assert np.allclose(base["center"], summaries["center"].reshape(3, 3, 2))
    assert np.allclose(base["cloudy_area"], summaries["cloudy_area"].reshape(3, 3))
    for v in VARS:
        swap = forked["swap"][v]
        assert swap["center"].shape == (3, 3, 2) and swap["coldness"].shape == (3, 3)
        assert not np.array_equal(swap["ir"], base["ir"]), v


def test_a_fork_with_its_own_fields_responds_not_at_all():
    forked = forked_response(small_cfg(seed=2), np.arange(3), frames=True)
    for v in VARS:  # common random numbers: the same innovations, texture and noise
        for key, value in forked["base"].items():
            assert np.array_equal(forked["swap"][v][key], value), (v, key)


def own_low_z(h5: h5py.File) -> np.ndarray:
    """``[S, T, H, W]`` the storm's own 500 hPa low (m), from its documented shape: a
    Gaussian of radius 3 rmax, 0.3 m deep per hPa of central pressure deficit."""
    centre, rmax = h5["meta/center"][()], h5["meta/rmax"][()]
    deficit = pressure_deficit(h5["meta/intensity"][()].astype(np.float64))
    rows, cols = np.mgrid[0:h5["ir"].shape[-2], 0:h5["ir"].shape[-1]]
    dist2 = (rows - centre[..., 0, None, None]) ** 2 + (cols - centre[..., 1, None, None]) ** 2
    return -0.3 * deficit[..., None, None] * np.exp(-dist2 / (3.0 * rmax[..., None, None]) ** 2)


def test_z_swap_moves_the_storm_by_the_steering_formula(tmp_path):
    cfg = small_cfg(n_storms=6, frames=6, seed=1)
    path = write_synth_tc(cfg, tmp_path / "tc.h5")
    with h5py.File(path) as h5:
        attrs = h5["era5/z"].attrs
        z = h5["era5/z"][()] * attrs["scale"] + attrs["offset"]  # m, as a model sees it
        centre = h5["meta/center"][()]
        low = own_low_z(h5)
    partner = np.array([3, 0, 5, 1, 2, 4])
    forked = forked_response(cfg, partner)
    moved = forked["swap"]["z"]["true_center"] - forked["base"]["true_center"]  # [S, T-1, 2]
    # independently: the Gaussian-weighted (sigma 0.1 domain) Z gradient (m per pixel) at the
    # storm's centre, of its own field and of the partner's environment (the partner's field
    # less the partner's low) with the storm's own low, at the same time
    grads = np.gradient(z, axis=(2, 3))
    swapped = np.gradient(z[partner] - low[partner] + low, axis=(2, 3))
    own = np.stack([weighted_mean(g, centre, 0.1 * 32) for g in grads], axis=-1)
    theirs = np.stack([weighted_mean(g, centre, 0.1 * 32) for g in swapped], axis=-1)
    pixel_m = 2500e3 / 32
    k = cfg.physics.steering * GRAVITY / CORIOLIS * cfg.dt_hours * 3600 / pixel_m ** 2
    d = (theirs - own)[:, :-1]
    expected = k * np.stack([-d[..., 1], d[..., 0]], axis=-1)  # geostrophic: row = -dZ/dcol
    lo, hi = 0.1 * 32 - 0.5, 0.9 * 32 - 0.5  # the domain clips centres there
    ends = np.stack([forked["base"]["true_center"], forked["swap"]["z"]["true_center"]])
    inside = np.all((ends > lo + 1e-6) & (ends < hi - 1e-6), axis=(0, 3))
    assert inside.mean() > 0.8 and np.abs(expected[inside]).max() > 0.5
    assert np.allclose(moved[inside], expected[inside], atol=1e-3)


def test_environment_swap_keeps_the_storm_and_takes_the_partners_environment(tmp_path):
    cfg = small_cfg(n_storms=6, frames=6, seed=1)
    path = write_synth_tc(cfg, tmp_path / "tc.h5")
    with h5py.File(path) as h5:
        era5 = np.stack([h5[f"era5/{v}"][()] for v in VARS], axis=1)  # [S, 4, T, H, W]
        attrs = h5["era5/z"].attrs
        low = own_low_z(h5) / attrs["scale"]  # normalised
    storm = np.array([0, 0, 2, 5, 4])
    times = np.array([[0, 1], [3, 4], [1, 2], [4, 5], [2, 3]])
    picked = era5[storm[:, None], :, times].transpose(0, 2, 1, 3, 4)  # [N, 4, E, H, W]
    same = environment_swapped_era5(cfg, storm, storm, times)
    np.testing.assert_array_equal(same, picked)  # its own environment: the file's fields
    partner = np.array([3, 1, 0, 2, 4])
    got = environment_swapped_era5(cfg, storm, partner, times)
    theirs = era5[partner[:, None], :, times].transpose(0, 2, 1, 3, 4)
    np.testing.assert_array_equal(got[:, 0], theirs[:, 0])  # SST has no storm part
    want_z = (theirs[:, 2] - low[partner[:, None], times] + low[storm[:, None], times])
    np.testing.assert_allclose(got[:, 2], want_z, atol=1e-4)
    assert np.abs(theirs[:, 2] - want_z).max() > 0.1  # the partner's low is not kept
    for bad, match in (((storm, partner, times + 1), "times must lie in 0..5"),
                       ((storm + 0.5, partner, times), "storm must be a 1-d integer"),
                       ((storm[:, None], partner, times), "storm must be a 1-d integer"),
                       ((storm, partner[:3], times), "same length")):
        with pytest.raises(InputError, match=match):
            environment_swapped_era5(cfg, *bad)


def test_bad_partner_is_an_input_error():
    for partner in (np.arange(2), np.array([0, 1, 3]), np.array([0.0, 1.0, 2.0])):
        with pytest.raises(InputError, match="partner"):
            forked_response(small_cfg(), partner)


def test_information_budget_shares(tiny):
    budget = json.loads(tiny["attrs"]["information_budget"])
    assert "meaning" in budget and set(budget["sources"]) == {"texture", "dynamics", "era5",
                                                               "ir_noise"}
    for scale in ("pixel", "pooled4"):
        b = budget[scale]
        shares = np.array([b["share"][k] for k in budget["sources"]])
        assert np.all((shares >= 0) & (shares <= 1)), scale
        assert abs(shares.sum() - 1) < 0.1 and abs(b["interaction"]) < 0.1, scale
        # ERA5 holds most of frame t+1 beyond the state at t; with the tiny set's persistent
        # fields (0.9) ERA5 at t-1 already knows most of that (news: 0.15 pooled, 0.21 pixel)
        assert b["share"]["era5"] > 0.8 and 0.1 < b["era5_news_share"] < 0.8, scale
        assert 0 < b["state_share"] < 1 and b["persistence_mse"] > b["variance"]["all"]
    # instrument noise, closed form: sigma^2 / 60^2 per pixel, 1/16 of it in 4x4 means
    sigma = json.loads(tiny["attrs"]["config"])["physics"]["ir_noise"]
    assert budget["pixel"]["variance"]["ir_noise"] == pytest.approx(sigma ** 2 / 3600, rel=0.05)
    assert budget["pooled4"]["variance"]["ir_noise"] == pytest.approx(sigma ** 2 / 3600 / 16,
                                                                       rel=0.1)


def test_budget_by_variable_matches_the_forked_frames(tmp_path):
    """Each variable's budget share is its forked frame change, computed the other way: the
    frames of :func:`forked_response` with the same partners, over the budget's V_all."""
    cfg = small_cfg(n_storms=4, frames=5)
    path = write_synth_tc(cfg, tmp_path / "tc.h5")
    with h5py.File(path) as h5:
        budget = json.loads(h5.attrs["information_budget"])["pixel"]
    forked = forked_response(cfg, (np.arange(4) + 1) % 4, frames=True)
    base = forked["base"]["ir"].astype(np.float64)
    for v in VARS:
        change = np.mean((base - forked["swap"][v]["ir"]) ** 2) / 2
        # shares are rounded to 4 decimals, V_all to 4 significant digits
        assert budget["era5_by_variable"][v] == pytest.approx(
            change / budget["variance"]["all"], rel=1e-3, abs=6e-5), v


def test_budget_by_variable_ranks_the_tiny_drivers(tiny):
    """On the tiny set Z (steering) moves frame t+1 most; SST's imprint is small."""
    share = json.loads(tiny["attrs"]["information_budget"])["pixel"]["era5_by_variable"]
    assert max(share, key=share.get) == "z" and share["z"] > 5 * share["sst"] > 0
    assert sum(share.values()) < 1.2


def test_broader_sst_patches_give_sst_a_larger_share(tiny, tmp_path):
    """SST patches of Gaussian radius 0.12-0.3 domain instead of 0.05-0.12: SST's budget
    share grows several-fold (0.045 -> 0.24 per pixel), everything else the same."""
    share = json.loads(tiny["attrs"]["information_budget"])["pixel"]["era5_by_variable"]
    broad = load_config(SynthTCConfig, "data/tc_tiny", ["physics.sst_patch_width=[0.12, 0.3]"])
    with h5py.File(write_synth_tc(broad, tmp_path / "broad.h5")) as h5:
        wide = json.loads(h5.attrs["information_budget"])["pixel"]["era5_by_variable"]
    assert wide["sst"] > 3 * share["sst"] and wide["z"] == max(wide.values())


@pytest.mark.parametrize("width", ["[0.3, 0.1]", "[0.1]", "[0.0, 0.1]"])
def test_bad_sst_patch_widths_are_refused(run_cli, tmp_path, width):
    out = tmp_path / "tc.h5"
    result = run_cli("data", "synth-tc", "--out", out, "--config", "data/tc_tiny", "--set",
                     f"physics.sst_patch_width={width}")
    assert result.code == 2 and "sst_patch_width" in result.err
    assert len(result.err.strip().splitlines()) == 1 and not out.exists()


def test_budget_shares_and_links_vanish_without_their_source(tmp_path):
    off = {"physics.texture_amplitude": 0, "physics.steering": 0, "physics.sst_coupling": 0,
           "physics.msl_coupling": 0, "physics.humidity_coupling": 0,
           "physics.rainband_coupling": 0}
    path = write_synth_tc(small_cfg(n_storms=4, **off), tmp_path / "tc.h5")
    with h5py.File(path) as h5:
        budget = json.loads(h5.attrs["information_budget"])["pixel"]
        links = json.loads(h5.attrs["causal_links"])["summary_links"]
    assert budget["share"]["texture"] == 0 and budget["share"]["era5"] == 0
    assert budget["share"]["dynamics"] > 0 and budget["share"]["ir_noise"] > 0
    assert all(links["support"][v][k] == 0 for v in VARS for k in SUMMARIES)
    assert all(links["strength"][v][k] == 0 for v in VARS for k in SUMMARIES)


# ----------------------------------------------------------------------------- generator
def test_deterministic_with_the_seed(tmp_path):
    a, b, c = (tmp_path / f"{name}.h5" for name in "abc")
    write_synth_tc(small_cfg(seed=3), a)
    write_synth_tc(small_cfg(seed=3), b)
    write_synth_tc(small_cfg(seed=4), c)
    with h5py.File(a) as fa, h5py.File(b) as fb, h5py.File(c) as fc:
        for key in ("ir", "era5/z", "meta/center", "meta/intensity"):
            assert np.array_equal(fa[key][()], fb[key][()]), key
            assert not np.array_equal(fa[key][()], fc[key][()]), key
        assert fa.attrs["causal_links"] == fb.attrs["causal_links"]


def test_bad_size_and_config_keys_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="multiple of 16"):
        write_synth_tc(small_cfg(size=50), tmp_path / "x.h5")
    with pytest.raises(InputError, match="n_storms"):
        load_config(SynthTCConfig, None, ["n_storm=3"])
    assert not (tmp_path / "x.h5").exists()


# ----------------------------------------------------------------------------- CLI
def test_cli_synth_tc_writes_the_requested_file(run_cli, tmp_path):
    out = tmp_path / "sub" / "tc.h5"
    result = run_cli("data", "synth-tc", "--out", out, "--config", "data/tc_tiny",
                     "--n-storms", 3, "--frames", 5, "--size", 48, "--seed", 7)
    assert result.code == 0, result.err
    with h5py.File(out) as h5:
        assert h5["ir"].shape == (3, 5, 48, 48) and h5.attrs["seed"] == 7
    assert list(tmp_path.joinpath("sub").iterdir()) == [out]  # no temporary file left


@pytest.mark.parametrize("args, words", [
    (("--size", 50), "multiple of 16"),
    (("--n-storms", 0), "n_storms"),
    (("--config", "data/no_such_config"), "config file not found"),
    (("--set", "physics.sst_coupling=-1"), "physics.sst_coupling"),
])
def test_cli_bad_options_exit_2(run_cli, tmp_path, args, words):
    result = run_cli("data", "synth-tc", "--out", tmp_path / "tc.h5", *args)
    assert result.code == 2 and words in result.err, result.err
    assert not (tmp_path / "tc.h5").exists()


def test_cli_unwritable_out_exits_2(run_cli, tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    result = run_cli("data", "synth-tc", "--out", blocker / "tc.h5", "--n-storms", 2,
                     "--frames", 2)
    assert result.code == 2 and "--out" in result.err, result.err
    result = run_cli("data", "synth-tc", "--out", tmp_path, "--n-storms", 2, "--frames", 2)
    assert result.code == 2 and "directory" in result.err, result.err


def test_cli_info_on_a_cyclone_file_and_a_checkpoint(run_cli, tiny, tmp_path):
    result = run_cli("data", "info", tiny["path"])
    assert result.code == 0, result.err
    assert "ir: float32 (48, 16, 32, 32)" in result.out and "mdcli-tc" in result.out
    assert "era5/sst: float32 (48, 16, 32, 32)" in result.out
    ckpt = save_checkpoint(tmp_path / "model.pt", {"weights": torch.zeros(2, 3), "epoch": 4})
    result = run_cli("data", "info", ckpt)
    assert result.code == 0, result.err
    assert "weights: tensor float32 (2, 3)" in result.out and "epoch: 4" in result.out


def test_cli_info_missing_or_corrupt_file_exits_2(run_cli, tiny, tmp_path):
    result = run_cli("data", "info", tmp_path / "missing.h5")
    assert result.code == 2 and "not found" in result.err
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(tiny["path"].read_bytes()[:4096])
    result = run_cli("data", "info", truncated)
    assert result.code == 2 and "corrupt" in result.err, result.err
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"definitely not a checkpoint")
    result = run_cli("data", "info", junk)
    assert result.code == 2 and "junk.pt" in result.err, result.err
