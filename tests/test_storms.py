"""``storm_summaries``: centre, coldness and cloudy area on analytic frames and synthetic storms."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from mdcli.config import load_config
from mdcli.data.synth_tc import SynthTCConfig, write_synth_tc
from mdcli.errors import InputError
from mdcli.forecast.storms import storm_summaries

CLEAR = -0.95  # 297 K in normalised IR


def grid(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.mgrid[0:n, 0:n].astype(float)


def blob(n: int, centre: tuple[float, float], sigma: float, peak: float = 0.8) -> np.ndarray:
    """A Gaussian cold cloud of ``peak`` (normalised IR) at a sub-pixel ``centre`` on clear sky."""
    rows, cols = grid(n)
    g = np.exp(-((rows - centre[0]) ** 2 + (cols - centre[1]) ** 2) / (2 * sigma ** 2))
    return CLEAR + (peak - CLEAR) * g


def disc(n: int, centre: tuple[float, float], radius: float, value: float) -> np.ndarray:
    rows, cols = grid(n)
    inside = (rows - centre[0]) ** 2 + (cols - centre[1]) ** 2 <= radius ** 2
    return np.where(inside, value, CLEAR)


def test_centre_of_gaussian_blobs_at_sub_pixel_positions():
    centres = [(13.3, 17.8), (16.0, 15.5), (11.72, 20.41), (19.05, 12.6)]
    frames = np.stack([blob(32, c, sigma) for c, sigma in zip(centres, (2.5, 3.0, 3.5, 4.0),
                                                               strict=True)])
    found = storm_summaries(frames)["center"]
    assert found.shape == (4, 2)
    assert np.abs(found - np.array(centres)).max() < 0.02, found


def test_disc_area_coldness_and_km2():
    centre, radius, value = (15.4, 16.7), 6.2, 0.7  # 0.7 = 198 K, far below 230 K
    frame = disc(32, centre, radius, value)
    inside = sum((i - centre[0]) ** 2 + (j - centre[1]) ** 2 <= radius ** 2
                 for i in range(32) for j in range(32))
    out = storm_summaries(frame[None])
    assert out["cloudy_area"][0] == pytest.approx(inside)
    assert out["coldness"][0] == pytest.approx(240.0 - 60.0 * value)
    assert np.hypot(*(out["center"][0] - centre)) < 0.1
    km = storm_summaries(frame[None], pixel_km=78.125)["cloudy_area"][0]
    assert km == pytest.approx(inside * 78.125 ** 2)


def test_cloudy_area_ramps_linearly_between_250_and_230_k():
    levels = np.array([255.0, 250.0, 245.0, 240.0, 235.0, 230.0, 225.0])  # K, uniform frames
    frames = np.ones((len(levels), 16, 16)) * ((240.0 - levels) / 60.0)[:, None, None]
    area = storm_summaries(frames)["cloudy_area"] / 256
    assert np.allclose(area, [0, 0, 0.25, 0.5, 0.75, 1, 1])


def test_eyewall_ring_centres_on_the_warm_eye():
    rows, cols = grid(32)
    centre = (15.6, 14.3)
    r = np.hypot(rows - centre[0], cols - centre[1])
    frame = np.where(r < 7, 0.55, CLEAR) + 0.35 * np.exp(-((r - 2.0) / 0.8) ** 2)
    frame = np.where(r < 1.0, -0.2, frame)  # a warm eye
    assert np.hypot(*(storm_summaries(frame[None])["center"][0] - centre)) < 0.05


def test_a_band_on_one_side_moves_the_centre_far_less_than_a_centroid():
    rows, cols = grid(32)
    centre = (15.2, 16.4)
    r = np.hypot(rows - centre[0], cols - centre[1])
    theta = np.arctan2(-(rows - centre[0]), cols - centre[1])
    overcast = np.where(r < 5.0, 0.6, CLEAR)
    # one arc band on the east side, 7 to 8.5 px out, 21 K warmer than the overcast
    band = (np.abs(theta) < 1.2) & (r > 7) & (r < 8.5)
    frame = np.where(band, 0.25, overcast)
    assert np.hypot(*(storm_summaries(frame[None])["center"][0] - centre)) < 0.3
    cold = frame > 0  # the centroid of the cloudy pixels is pulled 1.5 px east
    naive = np.array([(rows * cold).sum(), (cols * cold).sum()]) / cold.sum()
    assert np.hypot(*(naive - centre)) > 1.0


def test_batches_match_single_frames_and_torch_input():
    rng = np.random.default_rng(0)
    frames = np.stack([blob(32, rng.uniform(10, 22, 2), rng.uniform(2, 4)) for _ in range(5)])
    frames += rng.normal(0, 0.02, frames.shape)
    batch = storm_summaries(frames)
    for i in range(5):
        one = storm_summaries(frames[i:i + 1])
        for key in batch:
            assert np.allclose(batch[key][i], one[key][0]), key
    tensor = storm_summaries(torch.tensor(frames, dtype=torch.float32))
    for key in batch:
        assert np.allclose(batch[key], tensor[key], atol=1e-4), key


def test_a_larger_frame_of_the_same_storm_scales_by_the_frame_width():
    c32 = (14.3, 17.1)
    small = blob(32, c32, 3.0)
    c128 = tuple((c + 0.5) * 4 - 0.5 for c in c32)  # the same point in 128-pixel coordinates
    large = blob(128, c128, 12.0)
    s, big = storm_summaries(small[None]), storm_summaries(large[None])
    assert np.abs(big["center"][0] - np.array(c128)).max() < 0.05
    assert big["cloudy_area"][0] == pytest.approx(16 * s["cloudy_area"][0], rel=0.02)
    assert big["coldness"][0] == pytest.approx(s["coldness"][0], abs=0.5)


def test_error_on_synthetic_storms_is_a_fraction_of_a_pixel(tmp_path):
    cfg = load_config(SynthTCConfig, "data/tc_tiny", ["n_storms=16", "frames=8", "seed=2"])
    path = write_synth_tc(cfg, tmp_path / "tc.h5")
    with h5py.File(path) as h5:
        ir, centre = h5["ir"][()], h5["meta/center"][()]
        intensity = h5["meta/intensity"][()]
    out = storm_summaries(ir.reshape(-1, 32, 32))
    error = np.hypot(*(out["center"] - centre.reshape(-1, 2)).T)
    assert error.mean() < 0.3 and np.median(error) < 0.25, (error.mean(), np.median(error))
    # colder cloud tops for stronger storms: the coldness tracks the intensity
    assert np.corrcoef(out["coldness"], intensity.ravel())[0, 1] < -0.95


def test_bad_shapes_are_input_errors():
    with pytest.raises(InputError, match="frames"):
        storm_summaries(np.zeros((32, 32)))
    with pytest.raises(InputError, match="frames"):
        storm_summaries(np.zeros((2, 4, 4)))
