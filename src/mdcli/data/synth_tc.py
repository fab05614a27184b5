"""Synthetic tropical cyclones in the ``mdcli-tc`` HDF5 layout (``mdcli data synth-tc``).

Each storm moves through its own square domain for ``frames`` time steps. Per step the
generator draws ERA5-like fields (SST, MSL, Z at 500 hPa, R at 700 hPa) from slowly evolving
random processes (drifting Gaussian patches whose amplitudes follow AR(1) processes, plus a
large-scale Z gradient), renders an IR brightness-temperature frame of the storm (an eye that
widens and clears, a cold eyewall and a central dense overcast that widens and cools with
intensity, logarithmic spiral rain bands, cloud texture that moves with the storm and evolves
as an AR(1) process, instrument noise) and moves the storm to the next step. The fields at
time t drive frame t+1 (the *causal links*):

- SST anomaly near the centre -> intensity change (m/s per step);
- environmental MSL anomaly -> intensity change and the next central pressure;
- the Z gradient near the centre -> motion (a share of the geostrophic 500 hPa wind);
- the R (relative humidity) anomaly around the storm -> the rain-band extent and the
  intensity change (dry air erodes the storm).

Steering, intensity trends and the band extent persist from step to step, so past frames show
part of this information. The random numbers of a step are drawn apart from applying them
(``_Simulation.step(features, innovations)``), so a step can be *forked* with common random
numbers: :func:`forked_response` re-runs a file's simulation and swaps one variable's
environment for another storm's at every step (the storm's own part kept). The file records
the true links (``causal_links``, with the forecast-summary links ``summary_links``) and what
each source of randomness contributes to frame t+1 (``information_budget``). The layout is
documented in ``docs/data.md``.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from mdcli import __version__
from mdcli.config import from_dict, load_config, param, to_dict
from mdcli.data.layout import (
    IR_REFERENCE_K,
    IR_SCALE_K,
    NORMALISATION,
    VARIABLES,
    category,
    check_output,
    era5_attrs,
    ir_attrs,
    layout_root_attrs,
    write_meta_datasets,
)
from mdcli.errors import InputError
from mdcli.storage.atomic import atomic_path

LINK_TARGETS = ("intensity_change", "motion_row", "motion_col", "rainband_extent",
                "central_pressure")
SUMMARY_NAMES = ("motion", "coldness", "cloudy_area")  # forecast summaries of frame t+1
SUMMARY_KEYS = {"motion": "center", "coldness": "coldness", "cloudy_area": "cloudy_area"}
STATE_KEYS = {"motion": "true_center", "intensity": "intensity",
              "rainband_extent": "rainband_extent"}
BUDGET_SOURCES = ("texture", "dynamics", "era5", "ir_noise")
BUDGET_POOL = 4
P_ENV_HPA, V_MIN, V_MAX = 1010.0, 12.0, 85.0
GRAVITY, CORIOLIS = 9.81, 5.0e-5  # m s^-2, s^-1 (about 20 degrees N)
RHO_E = 1.15 * math.e  # air density (kg m^-3) times e, Holland's B = rho e V^2 / dP
SST_SIGMA, Z_SIGMA, ENV_SIGMA = 0.08, 0.1, 0.06  # Gaussian radii (domain widths) of features
RH_RING, RH_RING_WIDTH = 0.25, 0.07  # annulus (domain widths) of the humidity feature
BETA_DRIFT = np.array([-0.003, -0.002])  # north-westward, domain widths per step
CENTRE_PULL = 0.1  # share of the way back to the domain's middle per step
CENTRE_BOUNDS = (0.1, 0.9)  # domain widths
EXTENT_NOISE = 0.01  # domain widths per step
TEXTURE_LENGTH = 0.03  # correlation length of the cloud texture, domain widths
FORK_STORMS = 64  # the file's summary links and information budget use the first 64 storms


@dataclass
class PhysicsConfig:
    """Coefficients of the generator's dynamics (the true causal links) and of its noise."""

    sst_coupling: float = param(8.0, ge=0, help="intensity change (m/s per step) per degC "
                                                "of SST anomaly near the centre")
    msl_coupling: float = param(0.5, ge=0, help="intensity gain (m/s per step) per hPa of "
                                                "environmental MSL below 1010 hPa")
    humidity_coupling: float = param(0.12, ge=0, help="intensity change (m/s per step) per "
                                                      "% of R anomaly around the storm")
    steering: float = param(2.0, ge=0, help="share of the geostrophic 500 hPa wind that "
                                            "moves the storm")
    rainband_coupling: float = param(0.012, ge=0, help="equilibrium rain-band extent "
                                                       "(domain widths) per % of R anomaly")
    rainband_relaxation: float = param(0.7, gt=0, le=1, help="share of the way the band "
                                                             "extent moves to equilibrium per step")
    intensity_persistence: float = param(0.3, ge=0, lt=1, help="share of the last intensity "
                                                               "change that carries on")
    intensity_relaxation: float = param(0.03, ge=0, lt=1, help="pull towards 45 m/s per step")
    field_persistence: float = param(0.7, ge=0, lt=1, help="AR(1) coefficient of the MSL, Z "
                                                           "and R anomaly amplitudes per step")
    sst_persistence: float = param(0.5, ge=0, lt=1, help="AR(1) coefficient of the SST "
                                                         "anomaly amplitudes per step")
    sst_patch_width: list[float] = param([0.05, 0.12], gt=0, help="range of the Gaussian "
                                                          "radii (domain widths) of the SST "
                                                          "anomaly patches")
    texture_persistence: float = param(0.9, ge=0, lt=1, help="AR(1) coefficient of the cloud "
                                                             "texture per step")
    texture_amplitude: float = param(0.08, ge=0, help="cloud texture: relative modulation of "
                                                      "the cloud cover per standard deviation "
                                                      "(clear sky: 7.5 K times this)")
    intensity_noise: float = param(0.4, ge=0, help="m/s per step")
    motion_noise: float = param(0.002, ge=0, help="domain widths per step")
    ir_noise: float = param(0.5, ge=0, help="instrument noise of the IR frames (K)")


@dataclass
class SynthTCConfig:
    """``mdcli data synth-tc`` settings (``configs/data/*.yml``)."""

    seed: int = 0
    device: str = param("cpu", help="unused: the generator runs with numpy on the CPU")
    n_storms: int = param(48, ge=1)
    frames: int = param(16, ge=2, help="time steps per storm")
    size: int = param(32, ge=32, help="frame height and width in pixels: a multiple of 16")
    dt_hours: float = param(3.0, gt=0, help="time between frames")
    domain_km: float = param(2500.0, gt=0, help="width of a storm's domain")
    physics: PhysicsConfig = dataclasses.field(default_factory=PhysicsConfig)


def check_config(cfg: SynthTCConfig) -> None:
    """Checks the schema cannot express: the SST patch width range and the frame size."""
    width = cfg.physics.sst_patch_width
    if len(width) != 2 or width[0] > width[1]:
        raise InputError(f"config key 'physics.sst_patch_width': got {width}, expected two "
                         f"widths [low, high] with low <= high")
    if cfg.size < 32 or cfg.size % 16:
        raise InputError(f"config key 'size' (--size): got {cfg.size}, expected a multiple of "
                         f"16 >= 32 (64 or 128 for research data)")


# ----------------------------------------------------------------------------- fields
class _Patches:
    """Drifting Gaussian patches with AR(1) amplitudes: a smooth random field per storm."""

    def __init__(self, rng: np.random.Generator, n_storms: int, count: int, amplitude: float,
                 width: tuple[float, float], persistence: float) -> None:
        self.amplitude, self.persistence = amplitude, persistence
        self.centre = rng.uniform(-0.2, 1.2, (n_storms, count, 2))
        self.drift = rng.normal(0.0, 0.01, (n_storms, count, 2))
        self.width = rng.uniform(*width, (n_storms, count))
        self.amp = rng.normal(0.0, amplitude, (n_storms, count))

    def field(self, grid: np.ndarray) -> np.ndarray:
        """``[S, H, W]`` sum of the patches on ``grid`` (pixel centres, domain units)."""
        two_w2 = 2.0 * self.width[..., None] ** 2
        gy = np.exp(-(grid - self.centre[..., 0, None]) ** 2 / two_w2)
        gx = np.exp(-(grid - self.centre[..., 1, None]) ** 2 / two_w2)
        return np.einsum("sm,smh,smw->shw", self.amp, gy, gx)

    def innovation(self, rng: np.random.Generator) -> np.ndarray:
        """One step's random amplitude innovation ``[S, count]``."""
        return rng.normal(0.0, self.amplitude, self.amp.shape)

    def step(self, innovation: np.ndarray) -> None:
        p = self.persistence
        self.amp = p * self.amp + math.sqrt(1 - p * p) * innovation
        self.centre = self.centre + self.drift


class _Plane:
    """A uniform gradient ``[S, 2]`` (per domain width) whose components follow AR(1)."""

    def __init__(self, rng: np.random.Generator, n_storms: int, std: float, mean: tuple,
                 persistence: float) -> None:
        self.std, self.persistence = std, persistence
        self.mean = np.asarray(mean, dtype=float)
        self.value = self.mean + rng.normal(0.0, std, (n_storms, 2))

    def field(self, grid: np.ndarray) -> np.ndarray:
        d = grid - 0.5
        return self.value[:, 0, None, None] * d[:, None] + self.value[:, 1, None, None] * d

    def innovation(self, rng: np.random.Generator) -> np.ndarray:
        return rng.normal(0.0, self.std, self.value.shape)

    def step(self, innovation: np.ndarray) -> None:
        p = self.persistence
        self.value = self.mean + p * (self.value - self.mean) + math.sqrt(1 - p * p) * innovation


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int, int],
                  length: float) -> np.ndarray:
    """``[S, H, W // 2 + 1]`` spectrum (``rfft2``) of unit-variance Gaussian noise
    ``[S, H, W]`` correlated over ``length`` domain widths."""
    n = shape[-1]
    k = np.fft.fftfreq(n)[:, None] ** 2 + np.fft.rfftfreq(n)[None, :] ** 2
    spectrum = np.fft.rfft2(rng.standard_normal(shape)) * np.exp(
        -2.0 * (math.pi * length * n) ** 2 * k)
    std = np.fft.irfft2(spectrum, s=shape[-2:]).std(axis=(1, 2), keepdims=True)
    return spectrum / std


def _shifted(spectrum: np.ndarray, shift: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The periodic field ``[S, H, W]`` of ``spectrum`` (``rfft2``) moved by ``shift [S, 2]``
    pixels (row, col)."""
    rows = np.exp(-2j * np.pi * np.fft.fftfreq(shape[0])[None, :] * shift[:, :1])   # [S, H]
    cols = np.exp(-2j * np.pi * np.fft.rfftfreq(shape[1])[None, :] * shift[:, 1:])  # [S, W']
    return np.fft.irfft2(spectrum * rows[:, :, None] * cols[:, None, :], s=shape)


def _gauss_mean(field: np.ndarray, grid: np.ndarray, centre: np.ndarray,
                sigma: float) -> np.ndarray:
    """``[S, ...]`` Gaussian-weighted mean of ``field [S, ..., H, W]`` around ``centre``."""
    wy = np.exp(-(grid - centre[:, 0, None]) ** 2 / (2 * sigma ** 2))
    wx = np.exp(-(grid - centre[:, 1, None]) ** 2 / (2 * sigma ** 2))
    total = np.einsum("sh,s...hw,sw->s...", wy, field, wx)
    return total / (wy.sum(1) * wx.sum(1)).reshape((-1,) + (1,) * (field.ndim - 3))


def pressure_deficit(intensity: np.ndarray) -> np.ndarray:
    """Central pressure deficit (hPa) of a max wind (m/s): Atkinson-Holliday,
    ``V = 3.45 dP^0.644``."""
    return (np.asarray(intensity) / 3.45) ** (1.0 / 0.644)


# ----------------------------------------------------------------------------- storms
@dataclass
class _Storms:
    centre: np.ndarray        # [S, 2] row, col in domain widths
    intensity: np.ndarray     # [S] max wind m/s
    last_change: np.ndarray   # [S] intensity change of the last step
    extent: np.ndarray        # [S] rain-band extent, domain widths
    rmax_base: np.ndarray     # [S] radius of max wind at 45 m/s, domain widths
    arms: np.ndarray          # [S] number of spiral bands
    pitch: np.ndarray         # [S] spiral pitch angle (rad)
    phase: np.ndarray         # [S] band orientation (rad)
    spin: np.ndarray          # [S] band rotation per step (rad)

    @classmethod
    def draw(cls, rng: np.random.Generator, n: int) -> _Storms:
        # start south-east of the middle: the mean steering and the beta drift go north-west
        return cls(centre=rng.uniform(0.35, 0.65, (n, 2)) + [0.05, 0.08],
                   intensity=rng.uniform(18, 42, n), last_change=np.zeros(n),
                   extent=rng.uniform(0.22, 0.36, n),
                   rmax_base=rng.uniform(0.055, 0.075, n), arms=rng.integers(2, 4, n),
                   pitch=np.deg2rad(rng.uniform(15, 25, n)), phase=rng.uniform(0, 2 * np.pi, n),
                   spin=rng.uniform(0.4, 0.9, n))

    def rmax(self) -> np.ndarray:
        """Radius of maximum wind (domain widths): smaller for stronger storms."""
        return self.rmax_base * (1.2 - 0.4 * (self.intensity - V_MIN) / (V_MAX - V_MIN))


@dataclass
class _Innovations:
    """The random numbers of one step, drawn apart from applying them (forks reuse them)."""

    intensity: np.ndarray     # [S] m/s
    motion: np.ndarray        # [S, 2] domain widths
    extent: np.ndarray        # [S] domain widths
    texture: np.ndarray       # [S, H, W // 2 + 1] spectrum of unit-variance smooth noise
    fields: list[np.ndarray]  # amplitude innovations of the environment's processes

    def subset(self, rows: np.ndarray) -> _Innovations:
        """The storm innovations of ``rows`` (without the environment's)."""
        return _Innovations(self.intensity[rows], self.motion[rows], self.extent[rows],
                            self.texture[rows], [])


def _offsets(grid: np.ndarray, centre: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row and column offsets ``[S, H, 1]``, ``[S, 1, W]`` (domain widths) from ``centre``."""
    return (grid[None, :, None] - centre[:, 0, None, None],
            grid[None, None, :] - centre[:, 1, None, None])


def _distance(grid: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """Distance ``[S, H, W]`` (domain widths) from ``centre [S, 2]``."""
    dy, dx = _offsets(grid, centre)
    return np.sqrt(dy * dy + dx * dx)


def _polar(grid: np.ndarray, centre: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance ``[S, H, W]`` (domain widths) and math angle (north up) from ``centre``."""
    dy, dx = _offsets(grid, centre)
    return np.sqrt(dy * dy + dx * dx), np.arctan2(-dy, dx)


def col(values: np.ndarray) -> np.ndarray:
    """Per-storm values ``[S]`` as ``[S, 1, 1]`` to broadcast over frames."""
    return values[:, None, None]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _bump(x: np.ndarray) -> np.ndarray:
    """``exp(-x)`` for ``x >= 0``, flushed to 0 beyond 50 (exp's underflow path is slow)."""
    return np.exp(-np.minimum(x, 50.0))


def render_ir(storms: _Storms, r: np.ndarray, theta: np.ndarray, texture: np.ndarray,
              noise: np.ndarray, texture_amplitude: float) -> np.ndarray:
    """Brightness temperature (K) ``[S, H, W]``: clear sky, overcast, eye, eyewall, bands.

    Intensity shows as a central dense overcast (CDO) that widens and whose tops cool, an eye
    that widens and clears, and an eyewall ring that grows colder than the CDO.
    """
    v, rm = storms.intensity, storms.rmax()
    strength = np.clip((v - 15.0) / 60.0, 0.0, 1.0)
    cdo = col(storms.rmax_base * (2.0 + 2.5 * strength))
    overcast = _sigmoid((cdo - r) / 0.012)
    spiral = col(storms.phase) - np.log(np.maximum(r, 1e-3) / col(rm)) / np.tan(col(storms.pitch))
    # float32 cosine: numpy's float64 one is 20x slower, and bands need no more precision
    bands = ((1.0 + np.cos((col(storms.arms) * (theta - spiral)).astype(np.float32))) / 2) ** 2
    bands *= _sigmoid((col(storms.extent) - r) / 0.03) * _sigmoid((r - col(1.5 * rm)) / 0.02)
    a = texture_amplitude
    cloud = np.maximum(overcast, 0.9 * bands) * (1.0 + a * texture)
    clarity = _sigmoid((v - 38.0) / 5.0)
    eye = col(rm * (0.4 + 0.3 * strength))
    cloud *= 1.0 - col(clarity) * _bump((r / eye) ** 4)
    cloud = np.maximum(np.clip(cloud, 0.0, 1.0), 2.5 * a * np.clip(texture - 1.3, 0.0, 1.0))
    clear = 297.0 + 7.5 * a * texture
    top = col(225.0 - 30.0 * strength)
    eyewall = col(14.0 * strength) * _bump(((r - col(rm)) / col(0.4 * rm)) ** 2)
    return clear - cloud * (clear - top + eyewall) + noise


def normalised_ir(tb: np.ndarray) -> np.ndarray:
    """Brightness temperature (K) as stored in ``/ir``: ``clip((240 K - Tb) / 60 K, -1, 1)``,
    float32."""
    return np.clip((IR_REFERENCE_K - tb) / IR_SCALE_K, -1.0, 1.0).astype(np.float32)


def _storm_fields(storms: _Storms, r: np.ndarray) -> dict[str, np.ndarray]:
    """The storm's own parts of MSL (Holland profile), Z and R, ``[S, H, W]`` each."""
    deficit = pressure_deficit(storms.intensity)
    holland_b = np.clip(RHO_E * storms.intensity ** 2 / (100.0 * deficit), 0.8, 2.5)
    rm = storms.rmax()
    shape = np.exp(-(col(rm) / np.maximum(r, 1e-6)) ** col(holland_b))
    return {"msl": col(deficit) * (shape - 1.0),
            "z": -0.3 * col(deficit) * np.exp(-(r / col(3.0 * rm)) ** 2),
            "r": 25.0 * np.exp(-(r / col(2.5 * rm)) ** 2)}


# ----------------------------------------------------------------------------- simulation
def _compose(env: dict[str, np.ndarray], own: dict[str, np.ndarray]
             ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """``(fields, drivers)`` of an environment ``env`` with a storm's own parts ``own``: the
    ERA5 fields as stored (storm included) and the field each feature reads (MSL: the
    environment's)."""
    fields = {"sst": env["sst"], "msl": env["msl"] + own["msl"], "z": env["z"] + own["z"],
              "r": np.clip(env["r"] + own["r"], 5.0, 100.0)}
    return fields, {**fields, "msl": env["msl"]}


@dataclass
class _Now:
    """One time step as observed: the IR frame, the ERA5 fields and what drives the next."""

    tb: np.ndarray                  # [S, H, W] brightness temperature, K
    env: dict[str, np.ndarray]      # physical ERA5 fields without the storm
    own: dict[str, np.ndarray]      # the storm's own parts of MSL, Z and R
    features: dict[str, np.ndarray]  # [S] (z: [S, 2]) what drives step t -> t+1

    @functools.cached_property
    def _composed(self) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        return _compose(self.env, self.own)

    @property
    def fields(self) -> dict[str, np.ndarray]:
        return self._composed[0]

    @property
    def drivers(self) -> dict[str, np.ndarray]:
        return self._composed[1]

    def environment_swap(self, partner: np.ndarray
                         ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """``(fields, drivers)`` with storm ``partner[s]``'s environment at the same time and
        storm s's own parts: the intervention on ERA5 that keeps the storm as it is."""
        return _compose({v: f[partner] for v, f in self.env.items()}, self.own)

    def subset(self, rows: np.ndarray) -> _Now:
        def take(d: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            return {k: v[rows] for k, v in d.items()}
        return _Now(self.tb[rows], take(self.env), take(self.own), take(self.features))


class _Simulation:
    """Storms and their environment. ``observe(noise)`` renders the current time step,
    ``step(features, innovations)`` advances it; ``fork`` renders the next frame from other
    features or innovations without advancing (same state, so forks share random numbers)."""

    def __init__(self, cfg: SynthTCConfig) -> None:
        self.cfg, self.phys = cfg, cfg.physics
        self.rng = np.random.default_rng(cfg.seed)
        s, p = cfg.n_storms, cfg.physics.field_persistence
        self.grid = (np.arange(cfg.size) + 0.5) / cfg.size
        self.pixel_m = cfg.domain_km * 1000.0 / cfg.size
        self.dt_s = cfg.dt_hours * 3600.0
        self.storms = _Storms.draw(self.rng, s)
        self.start = self.storms.centre
        self.sst = _Patches(self.rng, s, 8, 1.5, tuple(cfg.physics.sst_patch_width),
                            cfg.physics.sst_persistence)
        self.z_plane = _Plane(self.rng, s, 40.0, (-10.0, 0.0), p)
        self.z_patches = _Patches(self.rng, s, 4, 12.0, (0.2, 0.35), p)
        self.msl = _Patches(self.rng, s, 4, 3.0, (0.2, 0.4), p)
        self.rh = _Patches(self.rng, s, 6, 18.0, (0.08, 0.2), p)
        self.processes = (self.sst, self.z_plane, self.z_patches, self.msl, self.rh)
        self.shape = (s, cfg.size, cfg.size)
        # the cloud texture relative to the storm, as an rfft2 spectrum (it moves with it)
        self.texture = _smooth_noise(self.rng, self.shape, TEXTURE_LENGTH)

    def subset(self, rows: np.ndarray) -> _Simulation:
        """A copy holding only storms ``rows``, for forks (it has no environment to step)."""
        view = copy.copy(self)
        view.storms = _Storms(**{f.name: getattr(self.storms, f.name)[rows]
                                 for f in dataclasses.fields(_Storms)})
        view.start, view.texture = self.start[rows], self.texture[rows]
        view.shape, view.processes = (len(rows), *self.shape[1:]), ()
        return view

    def environment(self) -> dict[str, np.ndarray]:
        """Physical ERA5 fields without the storm: SST (warmer south), MSL, Z, R."""
        g = self.grid
        return {"sst": 28.0 + 0.8 * (g[:, None] - 0.5) + self.sst.field(g),
                "msl": P_ENV_HPA + self.msl.field(g),
                "z": NORMALISATION["z"]["offset"] + self.z_plane.field(g) + self.z_patches.field(g),
                "r": np.clip(60.0 + self.rh.field(g), 5.0, 100.0)}

    def observe(self, noise: np.ndarray) -> _Now:
        """The current frame (with instrument ``noise`` in K), fields and features."""
        st = self.storms
        env = self.environment()
        r, theta = _polar(self.grid, st.centre)
        own = {"sst": np.zeros_like(env["sst"]), **_storm_fields(st, r)}
        return _Now(tb=self.render(st, self.texture, noise, (r, theta)), env=env, own=own,
                    features=self.features(_compose(env, own)[1], st.centre))

    def features(self, drivers: dict[str, np.ndarray], centre: np.ndarray
                 ) -> dict[str, np.ndarray]:
        return {v: self.feature(v, drivers[v], centre) for v in VARIABLES}

    def feature(self, var: str, field: np.ndarray, centre: np.ndarray) -> np.ndarray:
        """What ``field [S, H, W]`` of ``var`` feeds into the step of storms at ``centre``:
        SST and environmental MSL anomalies Gaussian-weighted around the centre, the Z
        gradient ``[S, 2]`` (m per m along row, col) likewise, the R anomaly on a ring."""
        g = self.grid
        if var == "sst":
            return _gauss_mean(field - 28.0, g, centre, SST_SIGMA)
        if var == "msl":
            return _gauss_mean(field - P_ENV_HPA, g, centre, ENV_SIGMA)
        if var == "z":
            grad = np.stack(np.gradient(field, axis=(1, 2)), axis=1) / self.pixel_m
            return _gauss_mean(grad, g, centre, Z_SIGMA)
        r = _distance(g, centre)
        ring = np.exp(-0.5 * ((r - RH_RING) / RH_RING_WIDTH) ** 2)
        return (ring * (field - 60.0)).sum((1, 2)) / ring.sum((1, 2))

    def motion(self, grad: np.ndarray) -> np.ndarray:
        """``[S, 2]`` steering displacement (domain widths per step) from ``grad`` (m/m)."""
        k = self.phys.steering * GRAVITY / CORIOLIS * self.dt_s / (self.cfg.domain_km * 1000.0)
        return k * np.stack([-grad[:, 1], grad[:, 0]], axis=1)

    def draw_innovations(self, rng: np.random.Generator) -> _Innovations:
        ph, n = self.phys, self.shape[0]
        return _Innovations(intensity=rng.normal(0.0, ph.intensity_noise, n),
                            motion=rng.normal(0.0, ph.motion_noise, (n, 2)),
                            extent=rng.normal(0.0, EXTENT_NOISE, n),
                            texture=_smooth_noise(rng, self.shape, TEXTURE_LENGTH),
                            fields=[process.innovation(rng) for process in self.processes])

    def draw_noise(self, rng: np.random.Generator) -> np.ndarray:
        """Instrument noise (K) of one frame ``[S, H, W]``."""
        return rng.normal(0.0, self.phys.ir_noise, self.shape)

    def advance(self, features: dict[str, np.ndarray], innov: _Innovations) -> _Storms:
        """The storms one step on, driven by ``features`` (the current storms are kept)."""
        st, ph = self.storms, self.phys
        change = (ph.intensity_persistence * st.last_change
                  + ph.sst_coupling * features["sst"] - ph.msl_coupling * features["msl"]
                  + ph.humidity_coupling * features["r"]
                  - ph.intensity_relaxation * (st.intensity - 45.0) + innov.intensity)
        intensity = np.clip(st.intensity + change, V_MIN, V_MAX)
        move = (self.motion(features["z"]) + BETA_DRIFT - CENTRE_PULL * (st.centre - 0.5)
                + innov.motion)
        target = 0.28 + ph.rainband_coupling * features["r"]
        extent = st.extent + ph.rainband_relaxation * (target - st.extent) + innov.extent
        return dataclasses.replace(
            st, centre=np.clip(st.centre + move, *CENTRE_BOUNDS), intensity=intensity,
            last_change=intensity - st.intensity, extent=np.clip(extent, 0.12, 0.45),
            phase=st.phase + st.spin)

    def next_texture(self, fresh: np.ndarray) -> np.ndarray:
        p = self.phys.texture_persistence
        return p * self.texture + math.sqrt(1 - p * p) * fresh

    def render(self, storms: _Storms, texture: np.ndarray, noise: np.ndarray,
               polar: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        """Frame (K) of ``storms``; the cloud ``texture`` (storm-relative spectrum) moves
        with them."""
        r, theta = _polar(self.grid, storms.centre) if polar is None else polar
        moved = _shifted(texture, (storms.centre - self.start) * self.cfg.size, self.shape[1:])
        return render_ir(storms, r, theta, moved, noise, self.phys.texture_amplitude)

    def fork(self, features: dict[str, np.ndarray], innov: _Innovations,
             noise: np.ndarray) -> tuple[_Storms, np.ndarray]:
        """The storms and frame (K) of the next step from ``features``, ``innov`` and
        ``noise``, without advancing the simulation."""
        storms = self.advance(features, innov)
        return storms, self.render(storms, self.next_texture(innov.texture), noise)

    def step(self, features: dict[str, np.ndarray], innov: _Innovations) -> None:
        """Advance storms and environment by one time step, driven by ``features``."""
        self.storms = self.advance(features, innov)
        for process, innovation in zip(self.processes, innov.fields, strict=True):
            process.step(innovation)
        self.texture = self.next_texture(innov.texture)


def _timeline(cfg: SynthTCConfig
              ) -> Iterator[tuple[_Simulation, _Now, _Innovations | None, np.ndarray | None]]:
    """``(simulation, observation, innovations, next noise)`` per time step, the simulation
    at that step; innovations and noise are None at the last step. The random numbers are
    drawn in a fixed order (start, noise 0, then per step innovations t and noise t+1), so a
    re-run from the same config reproduces every frame."""
    sim = _Simulation(cfg)
    noise = sim.draw_noise(sim.rng)
    for t in range(cfg.frames):
        now = sim.observe(noise)
        if t + 1 == cfg.frames:
            yield sim, now, None, None
            return
        innov = sim.draw_innovations(sim.rng)
        noise = sim.draw_noise(sim.rng)
        yield sim, now, innov, noise
        sim.step(now.features, innov)


# ----------------------------------------------------------------------------- forks
def _swap_forks(sim: _Simulation, now: _Now, innov: _Innovations, noise: np.ndarray,
                partner: np.ndarray) -> dict[str, tuple[_Storms, np.ndarray]]:
    """The true next step (``base``) and, per variable, the step whose feature reads storm
    ``partner[s]``'s environment at the same time (the storm's own part kept), with the same
    innovations and noise."""
    forks = {"base": sim.fork(now.features, innov, noise)}
    drivers = now.environment_swap(partner)[1]
    for v in VARIABLES:
        swapped = sim.feature(v, drivers[v], sim.storms.centre)
        forks[v] = sim.fork({**now.features, v: swapped}, innov, noise)
    return forks


def _fork_record(storms: _Storms, tb: np.ndarray, size: int, pixel_km: float,
                 frames: bool) -> dict[str, np.ndarray]:
    """Storm summaries of the frame and the generator's state quantities of one fork."""
    from mdcli.forecast.storms import storm_summaries

    ir = normalised_ir(tb)
    record = {**storm_summaries(ir, pixel_km), "true_center": storms.centre * size - 0.5,
              "intensity": storms.intensity.copy(), "rainband_extent": storms.extent * size}
    if frames:
        record["ir"] = ir
    return record


def _stack(records: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Per-step records ``[S, ...]`` as ``[S, T-1, ...]``."""
    return {k: np.stack([r[k] for r in records], axis=1) for k in records[0]}


def _indices(what: str, name: str, values: np.ndarray, ndim: int, bound: int) -> np.ndarray:
    """``values`` as an int64 array of ``ndim`` dimensions with entries in ``0..bound-1``."""
    a = np.asarray(values)
    if a.ndim != ndim or a.dtype.kind not in "iu":
        raise InputError(f"{what}: {name} must be a {ndim}-d integer array, got shape "
                         f"{a.shape} dtype {a.dtype}")
    if a.size and (a.min() < 0 or a.max() >= bound):
        raise InputError(f"{what}: {name} must lie in 0..{bound - 1}, got {a.min()}..{a.max()}")
    return a.astype(np.int64)


def check_partner(partner: np.ndarray, n_storms: int) -> np.ndarray:
    """``partner`` as an int array ``[n_storms]`` of storm indices."""
    p = _indices("forked response", "partner", partner, 1, n_storms)
    if len(p) != n_storms:
        raise InputError(f"forked response: partner must hold {n_storms} storm indices, got "
                         f"{len(p)}")
    return p


def forked_response(cfg: SynthTCConfig, partner: np.ndarray, frames: bool = False) -> dict:
    """The generator's own response of frame t+1 to each ERA5 variable, by forking.

    Re-runs the simulation of ``cfg`` (the same seed reproduces the file's frames exactly).
    At every step t < frames-1 the true step (``base``) and, per variable v, a fork in which
    the feature of v that drives t -> t+1 reads storm ``partner[s]``'s *environment* of v at
    time t with storm s's own part (its low in MSL and Z, its moisture in R) kept, as
    :func:`environment_swapped_era5` gives a model; every other feature, the random
    innovations, the cloud texture and the instrument noise kept. ``partner = arange(S)``
    gives zero response exactly.

    Returns ``{"base": rec, "swap": {v: rec}, "partner": [S], "pixel_km": float}``; each
    ``rec`` holds, for frame t+1 (axis 1 = t), the :func:`~mdcli.forecast.storms.storm_summaries`
    of the normalised frame, ``center [S, T-1, 2]`` (pixels), ``coldness`` (K),
    ``cloudy_area`` (km^2), and the generator's state ``true_center [S, T-1, 2]`` (pixels, as
    ``/meta/center``), ``intensity`` (m/s), ``rainband_extent`` (pixels); with ``frames``
    also ``ir [S, T-1, H, W]`` (normalised, float32, as ``/ir[:, 1:]``).
    """
    check_config(cfg)
    partner = check_partner(partner, cfg.n_storms)
    pixel_km = cfg.domain_km / cfg.size
    steps: list[dict[str, dict]] = []
    for sim, now, innov, noise in _timeline(cfg):
        if innov is None:
            break
        forks = _swap_forks(sim, now, innov, noise, partner)
        steps.append({k: _fork_record(*fork, cfg.size, pixel_km, frames)
                      for k, fork in forks.items()})
    return {"base": _stack([s["base"] for s in steps]),
            "swap": {v: _stack([s[v] for s in steps]) for v in VARIABLES},
            "partner": partner, "pixel_km": pixel_km}


def synth_config(attrs) -> SynthTCConfig:
    """The generator config recorded in a synth-tc file's root attributes."""
    return from_dict(SynthTCConfig, json.loads(attrs["config"]), "synth-tc config")


def environment_swapped_era5(cfg: SynthTCConfig, storm: np.ndarray, partner: np.ndarray,
                             times: np.ndarray, stored: np.ndarray | None = None
                             ) -> np.ndarray:
    """``[N, 4, E, H, W]`` normalised ERA5 as stored, but with each variable's environment
    from storm ``partner[i]`` and the storm's own part (its low in MSL and Z, its moisture in
    R) from storm ``storm[i]``, at the frame indices ``times [N, E]`` (float32).

    Re-runs the simulation of ``cfg``. This is the swap of :func:`forked_response`, as a model
    sees it: the field stays consistent with the storm in the frames, where swapping the
    whole field would also hand the model the other storm's low, at that storm's position
    and depth. ``stored`` (``[N, 4, E, H, W]``, the windows' own ERA5 as the file holds it)
    is checked against the re-run: an InputError when the simulation does not give it back
    exactly (a file from another generator version or config).
    """
    check_config(cfg)
    what = "environment swap"
    storm = _indices(what, "storm", storm, 1, cfg.n_storms)
    partner = _indices(what, "partner", partner, 1, cfg.n_storms)
    times = _indices(what, "times", times, 2, cfg.frames)
    n = len(storm)
    if len(partner) != n or len(times) != n:
        raise InputError(f"environment swap: storm, partner and times must have the same "
                         f"length N, got {n}, {len(partner)} and {len(times)}")
    out = np.zeros((n, len(VARIABLES), times.shape[1], cfg.size, cfg.size), np.float32)
    for t, (_, now, _, _) in enumerate(_timeline(cfg)):
        rows, steps = np.nonzero(times == t)
        if not len(rows):
            continue
        own = {v: f[storm[rows]] for v, f in now.own.items()}
        fields = _compose({v: f[partner[rows]] for v, f in now.env.items()}, own)[0]
        if stored is not None:
            theirs = _compose({v: f[storm[rows]] for v, f in now.env.items()}, own)[0]
            if not all(np.array_equal(_normalised(v, theirs[v]), stored[rows, i, steps])
                       for i, v in enumerate(VARIABLES)):
                raise InputError(f"environment swap: the generator (config seed {cfg.seed}) "
                                 f"does not reproduce the file's ERA5 at frame {t}")
        for i, v in enumerate(VARIABLES):
            out[rows, i, steps] = _normalised(v, fields[v])
    return out


def _normalised(variable: str, field: np.ndarray) -> np.ndarray:
    """A physical ERA5 field as ``/era5/<variable>`` stores it (float32)."""
    norm = NORMALISATION[variable]
    return ((field - norm["offset"]) / norm["scale"]).astype(np.float32)


def _pool(x: np.ndarray, k: int) -> np.ndarray:
    """``[S, H, W]`` averaged over ``k x k`` blocks."""
    s, h, w = x.shape
    return x.reshape(s, h // k, k, w // k, k).mean((2, 4))


def _sig(x: float) -> float:
    """``x`` to 4 significant digits (for the JSON attributes)."""
    return float(f"{x:.4g}")


class _Budget:
    """Accumulates the information budget of frame t+1 over the steps of a simulation.

    For a source c, ``V_c = E[(F - F_c)^2] / 2`` over storms, steps and pixels, where F is the
    normalised true frame t+1 and F_c the same frame forked at t with only c drawn afresh
    (ERA5: every feature read from the partner storm's environment at the same time, the
    storm's own part kept). ``V_c`` is
    the variance of frame t+1 that c explains given the state at t and the other sources
    (Jansen's total-effect estimator); ``all`` redraws every source at once.
    """

    FORKS = (*BUDGET_SOURCES, "all", "era5_news", *(f"era5_{v}" for v in VARIABLES))

    def __init__(self, cfg: SynthTCConfig) -> None:
        self.rng = np.random.default_rng([cfg.seed, 1])  # apart from the simulation's stream
        self.sums = {name: np.zeros(2) for name in (*self.FORKS, "persistence")}
        self.counts = dict.fromkeys(self.sums, 0)
        n, k = cfg.size, cfg.size // BUDGET_POOL
        self.moments = [np.zeros((2, n, n)), np.zeros((2, k, k))]  # per pixel: sum, squares
        self.frames = 0

    def _add(self, name: str, d: np.ndarray, factor: float = 1.0) -> None:
        self.sums[name] += [factor * np.mean(d * d),
                            factor * np.mean(_pool(d, BUDGET_POOL) ** 2)]
        self.counts[name] += 1

    def add(self, sim: _Simulation, now: _Now, before: _Now | None, innov: _Innovations,
            noise: np.ndarray, base: np.ndarray, partner: np.ndarray) -> None:
        """Fork step t for every source; ``base`` is the true frame t+1 (K), ``before`` the
        observation at t-1 (None at t = 0)."""
        alt, alt_noise = sim.draw_innovations(self.rng), sim.draw_noise(self.rng)
        centre = sim.storms.centre
        swapped = sim.features(now.environment_swap(partner)[1], centre)
        dynamics = {"intensity": alt.intensity, "motion": alt.motion, "extent": alt.extent}
        forks = {
            "texture": (now.features, dataclasses.replace(innov, texture=alt.texture), noise),
            "dynamics": (now.features, dataclasses.replace(innov, **dynamics), noise),
            "era5": (swapped, innov, noise),
            "all": (swapped, dataclasses.replace(innov, texture=alt.texture, **dynamics),
                    alt_noise),
        }
        forks.update({f"era5_{v}": ({**now.features, v: swapped[v]}, innov, noise)
                      for v in VARIABLES})
        if before is not None:  # the storm's own fields one step earlier
            forks["era5_news"] = (sim.features(before.drivers, centre), innov, noise)
        f = normalised_ir(base).astype(np.float64)
        for name, (features, inn, nz) in forks.items():
            self._add(name, f - normalised_ir(sim.fork(features, inn, nz)[1]), 0.5)
        self._add("ir_noise", f - normalised_ir(base - noise + alt_noise), 0.5)  # additive
        self._add("persistence", f - normalised_ir(now.tb))
        for moments, x in zip(self.moments, (f, _pool(f, BUDGET_POOL)), strict=True):
            moments += [x.sum(0), (x * x).sum(0)]
        self.frames += f.shape[0]

    def result(self) -> dict:
        """The ``information_budget`` attribute (without its text)."""
        out = {}
        for j, scale in enumerate(("pixel", f"pooled{BUDGET_POOL}")):
            v = {k: self.sums[k][j] / self.counts[k] for k in self.sums if self.counts[k]}
            total = max(v["all"], 1e-30)
            mean, square = self.moments[j] / self.frames
            frame_variance = float(np.mean(square - mean ** 2))
            share = {k: v[k] / total for k in BUDGET_SOURCES}
            out[scale] = {
                "share": {k: round(x, 4) for k, x in share.items()},
                "interaction": round(1.0 - sum(share.values()), 4),
                "era5_news_share": round(v["era5_news"] / total, 4) if "era5_news" in v
                else None,
                "era5_by_variable": {x: round(v[f"era5_{x}"] / total, 4) for x in VARIABLES},
                "variance": {k: _sig(v[k]) for k in (*BUDGET_SOURCES, "all")},
                "frame_variance": _sig(frame_variance),
                "state_share": round(1.0 - v["all"] / max(frame_variance, 1e-30), 4),
                "persistence_mse": _sig(v["persistence"]),
            }
        return out


# ----------------------------------------------------------------------------- file
BUDGET_MEANING = (
    "Variance of the normalised IR frame t+1 (per pixel, and of 4x4-pixel block means) that "
    "each source of randomness explains given the exact state at t, measured by forking every "
    "step t: V_c = mean over storms, steps and pixels of (F - F_c)^2 / 2, F the true frame "
    "t+1 and F_c the frame with only source c drawn afresh (same state, every other random "
    "number kept). share = V_c / V_all, V_all with every source redrawn at once (what a "
    "forecaster that knows the state at t but none of the sources cannot remove); "
    "interaction = 1 - sum of the shares. era5_news_share: V_c with the storm's own fields "
    "one step earlier instead of the partner's (what ERA5 at t adds beyond ERA5 at t-1) over "
    "V_all. era5_by_variable: V_c with only that variable read from the partner's "
    "environment (the others kept) over V_all, the ceiling of what a forecaster gains from it. "
    "frame_variance: variance of frame t+1 over storms and steps, averaged over "
    "pixels; state_share = 1 - V_all / frame_variance, what the state at t fixes. "
    "persistence_mse: mean squared difference of frames t+1 and t.")
BUDGET_SOURCE_TEXT = {
    "texture": "the step's cloud-texture innovation (physics.texture_persistence, "
               "texture_amplitude)",
    "dynamics": "the step's intensity, motion and rain-band extent noise",
    "era5": "all four ERA5 variables read from the partner storm's environment at the same "
            "time (the storm's own part kept)",
    "ir_noise": "the instrument noise of frame t+1 (physics.ir_noise)",
}
PARTNER_TEXT = (f"storm (s + 1) mod K at the same time, over the first K = min(S, "
                f"{FORK_STORMS}) storms")


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x))))


def _summary_support(ph: PhysicsConfig) -> dict[str, dict[str, int]]:
    """Structural links: which variables drive which forecast summary in the equations."""
    to_intensity = {"sst": ph.sst_coupling > 0, "msl": ph.msl_coupling > 0, "z": False,
                    "r": ph.humidity_coupling > 0}
    return {v: {"motion": int(v == "z" and ph.steering > 0),
                "coldness": int(to_intensity[v]),
                "cloudy_area": int(to_intensity[v] or (v == "r" and ph.rainband_coupling > 0))}
            for v in VARIABLES}


def _summary_links(cfg: SynthTCConfig, observed: dict[str, np.ndarray],
                   state: dict[str, np.ndarray], forked: dict | None) -> dict:
    """The ``summary_links`` block: structural support and forked response strengths."""
    block: dict = {
        "summaries": list(SUMMARY_NAMES), "support": _summary_support(cfg.physics),
        "support_meaning": "1 where the variable's feature enters an equation that the "
                           "summary depends on: z -> motion (steering); sst, msl, r -> "
                           "intensity change -> CDO tops, CDO size, eye (coldness, cloudy "
                           "area); r -> rain-band extent (cloudy area); 0 = no path",
        "partner": PARTNER_TEXT, "strength": None, "state_strength": None}
    if forked is None:
        return block
    base, swap = forked["base"], forked["swap"]
    scale = {name: _rms(np.diff(observed[SUMMARY_KEYS[name]], axis=1)) + 1e-12
             for name in SUMMARY_NAMES}
    state_scale = {name: _rms(np.diff(state[key], axis=1)) + 1e-12
                   for name, key in STATE_KEYS.items()}
    block.update({
        "strength": {v: {name: round(_rms(swap[v][key] - base[key]) / scale[name], 4)
                         for name, key in SUMMARY_KEYS.items()} for v in VARIABLES},
        "strength_meaning": "RMS change of the storm summary (mdcli.forecast.storms) of frame "
                            "t+1 when the variable's environment is swapped for the partner's in a "
                            "fork of step t (same innovations and noise), over the RMS "
                            "one-step change of that summary in the true frames (motion: "
                            "centre displacement, both components)",
        "state_strength": {v: {name: round(_rms(swap[v][key] - base[key]) / state_scale[name],
                                           4) for name, key in STATE_KEYS.items()}
                           for v in VARIABLES},
        "state_strength_meaning": "the same for the generator's true centre, intensity and "
                                  "rain-band extent",
    })
    return block


def _causal_links(cfg: SynthTCConfig, sim: _Simulation, feats: dict[str, np.ndarray],
                  targets: dict[str, np.ndarray], summary_links: dict) -> dict:
    """The true direct links, their coefficients and standardised effects ``[4, 5]``, and
    the links to the forecast summaries."""
    ph = cfg.physics
    steer = ph.steering * GRAVITY / CORIOLIS * sim.dt_s / sim.pixel_m ** 2  # px per (m per px)
    p = ph.field_persistence
    links = [
        ("sst", "intensity_change", ph.sst_coupling, "sst", "SST anomaly (degC from 28) "
         f"Gaussian-weighted (sigma {SST_SIGMA} domain) around the centre", "m/s per degC"),
        ("msl", "intensity_change", -ph.msl_coupling, "msl", "environmental MSL anomaly (hPa "
         f"from {P_ENV_HPA:g}, storm removed) Gaussian-weighted (sigma {ENV_SIGMA})",
         "m/s per hPa"),
        ("msl", "central_pressure", p, "msl", "the same environmental MSL anomaly: it persists "
         "(AR(1)) into the next central pressure", "hPa per hPa"),
        ("z", "motion_row", -steer, "z_col", f"dZ/dcol (m per pixel) Gaussian-weighted (sigma "
         f"{Z_SIGMA}) around the centre: geostrophic steering", "pixels per (m per pixel)"),
        ("z", "motion_col", steer, "z_row", "dZ/drow (m per pixel), same weights",
         "pixels per (m per pixel)"),
        ("r", "rainband_extent", ph.rainband_relaxation * ph.rainband_coupling * cfg.size, "r",
         f"R anomaly (% from 60) on a ring of radius {RH_RING} domain around the centre",
         "pixels per %"),
        ("r", "intensity_change", ph.humidity_coupling, "r", "the same ring R anomaly",
         "m/s per %"),
    ]
    matrix = np.zeros((len(VARIABLES), len(LINK_TARGETS)))
    table = []
    for var, target, coef, feat, feature_text, units in links:
        spread = float(np.std(feats[feat]) * abs(coef) / max(np.std(targets[target]), 1e-12))
        matrix[VARIABLES.index(var), LINK_TARGETS.index(target)] = spread
        table.append({"variable": var, "target": target, "coefficient": coef, "units": units,
                      "feature": feature_text, "standardized": spread})
    return {"variables": list(VARIABLES), "targets": list(LINK_TARGETS),
            "matrix": matrix.round(4).tolist(),
            "matrix_meaning": "|coefficient| * std(feature at t) / std(target at t+1) over "
                              "this file; 0 = no direct link",
            "importance": (matrix.sum(1) / matrix.sum()).round(4).tolist(),
            "importance_meaning": "row sums of the matrix, normalised to sum 1",
            "links": table, "summary_links": summary_links}


def _information_budget(budget: _Budget | None) -> dict:
    text = {"meaning": BUDGET_MEANING, "sources": BUDGET_SOURCE_TEXT, "partner": PARTNER_TEXT}
    if budget is None:
        return {**text, "note": "needs at least 2 storms"}
    return {**text, **budget.result()}


def write_synth_tc(cfg: SynthTCConfig, out: str | Path) -> Path:
    """Simulate ``cfg`` and write the ``mdcli-tc`` HDF5 file ``out`` atomically.

    Besides the frames, every step is forked (:func:`forked_response` with partner storm
    (s + 1) mod S, and :class:`_Budget`) for the ``summary_links`` block of the
    ``causal_links`` attribute and the ``information_budget`` attribute.
    """
    from mdcli.forecast.storms import storm_summaries

    out = Path(out)
    check_config(cfg)
    check_output(out)
    s, t, n = cfg.n_storms, cfg.frames, cfg.size
    pixel_km = cfg.domain_km / n
    meta = {k: np.zeros((s, t), np.float32) for k in ("intensity", "pressure", "rmax", "extent")}
    centre = np.zeros((s, t, 2), np.float32)
    feats = {k: np.zeros((s, t)) for k in ("sst", "msl", "z_row", "z_col", "r")}
    rows = np.arange(min(s, FORK_STORMS))  # the storms that are forked
    partner = np.roll(rows, -1) if len(rows) > 1 else None
    budget = _Budget(cfg) if partner is not None else None
    observed, steps, before = [], [], None
    try:
        with atomic_path(out) as tmp, h5py.File(tmp, "w") as h5:
            ir = h5.create_dataset("ir", (s, t, n, n), np.float32, chunks=(1, 1, n, n))
            era5 = {v: h5.create_dataset(f"era5/{v}", (s, t, n, n), np.float32,
                                         chunks=(1, 1, n, n)) for v in VARIABLES}
            for step, (sim, now, innov, noise) in enumerate(_timeline(cfg)):
                frame = normalised_ir(now.tb)
                ir[:, step] = frame
                observed.append(storm_summaries(frame[rows], pixel_km))
                for v in VARIABLES:
                    era5[v][:, step] = _normalised(v, now.fields[v])
                st, f = sim.storms, now.features
                centre[:, step] = st.centre * n - 0.5
                meta["intensity"][:, step] = st.intensity
                meta["pressure"][:, step] = (P_ENV_HPA + f["msl"]
                                             - pressure_deficit(st.intensity))
                meta["rmax"][:, step] = st.rmax() * n
                meta["extent"][:, step] = st.extent * n
                for key in ("sst", "msl", "r"):
                    feats[key][:, step] = f[key]
                feats["z_row"][:, step], feats["z_col"][:, step] = (f["z"] * sim.pixel_m).T
                if innov is not None and partner is not None:
                    view, seen = sim.subset(rows), now.subset(rows)
                    inn, nz = innov.subset(rows), noise[rows]
                    forks = _swap_forks(view, seen, inn, nz, partner)
                    steps.append({k: _fork_record(*fork, n, pixel_km, False)
                                  for k, fork in forks.items()})
                    budget.add(view, seen, before, inn, nz, forks["base"][1], partner)
                    before = seen
            _write_meta(h5, cfg, centre, meta)
            targets = {"intensity_change": np.diff(meta["intensity"], axis=1),
                       "motion_row": np.diff(centre[..., 0], axis=1),
                       "motion_col": np.diff(centre[..., 1], axis=1),
                       "rainband_extent": meta["extent"][:, 1:],
                       "central_pressure": meta["pressure"][:, 1:]}
            forked = None if partner is None else {
                "base": _stack([r["base"] for r in steps]),
                "swap": {v: _stack([r[v] for r in steps]) for v in VARIABLES}}
            state = {"true_center": centre[rows], "intensity": meta["intensity"][rows],
                     "rainband_extent": meta["extent"][rows]}
            summary_links = _summary_links(cfg, _stack(observed), state, forked)
            links = _causal_links(cfg, sim, {k: v[:, :-1] for k, v in feats.items()}, targets,
                                  summary_links)
            _write_attrs(h5, cfg, links, _information_budget(budget))
    except OSError as exc:
        raise InputError(f"--out {out}: cannot write ({exc.strerror or exc})") from None
    return out


def _write_meta(h5: h5py.File, cfg: SynthTCConfig, centre: np.ndarray,
                meta: dict[str, np.ndarray]) -> None:
    g = h5.create_group("meta")
    items = {
        "storm_id": (np.arange(cfg.n_storms, dtype=np.int64), "", "storm number"),
        "time": (np.tile(np.arange(cfg.frames, dtype=np.float32) * cfg.dt_hours,
                         (cfg.n_storms, 1)), "hours", "time since the storm's first frame"),
        "center": (centre, "pixels", "storm centre (row, col); pixel i spans [i-0.5, i+0.5]"),
        "intensity": (meta["intensity"], "m/s", "maximum sustained wind"),
        "pressure": (meta["pressure"], "hPa", "central pressure"),
        "category": (category(meta["intensity"]).astype(np.int64), "",
                     "Saffir-Simpson-like 0..5, 0 = tropical storm or weaker"),
        "rmax": (meta["rmax"], "pixels", "radius of maximum wind"),
        "rainband_extent": (meta["extent"], "pixels", "outer radius of the spiral rain bands"),
    }
    write_meta_datasets(g, items)


def _write_attrs(h5: h5py.File, cfg: SynthTCConfig, links: dict, budget: dict) -> None:
    h5["ir"].attrs.update(ir_attrs())
    for v in VARIABLES:
        norm = NORMALISATION[v]
        h5[f"era5/{v}"].attrs.update(era5_attrs(norm["offset"], norm["scale"], norm["units"],
                                                norm["level"]))
    h5.attrs.update({
        **layout_root_attrs(),
        "seed": cfg.seed, "n_storms": cfg.n_storms, "frames": cfg.frames, "size": cfg.size,
        "dt_hours": cfg.dt_hours, "domain_km": cfg.domain_km,
        "generator": f"mdcli {__version__} data synth-tc",
        "config": json.dumps(to_dict(cfg)), "causal_links": json.dumps(links),
        "information_budget": json.dumps(budget)})


def generate_from_config(source: str | Path | None, out: str | Path,
                         overrides: Iterable[str] = ()) -> Path:
    """Load a synth-tc config (path or packaged name, e.g. ``data/tc_tiny``) and write ``out``."""
    return write_synth_tc(load_config(SynthTCConfig, source, overrides), out)
