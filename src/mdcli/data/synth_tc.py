"""Synthetic tropical cyclones in the ``mdcli-tc`` HDF5 layout (``mdcli data synth-tc``).

Each storm moves through its own square domain for ``frames`` time steps. Per step the
generator draws ERA5-like fields (SST, MSL, Z at 500 hPa, R at 700 hPa) from slowly evolving
random processes (drifting Gaussian patches whose amplitudes follow AR(1) processes, plus a
large-scale Z gradient), renders an IR brightness-temperature frame of the storm (clear eye,
cold eyewall, central dense overcast, logarithmic spiral rain bands, cloud texture) and moves
the storm to the next step. The fields at time t drive frame t+1 (the *causal links*):

- SST anomaly near the centre -> intensity change (m/s per step);
- environmental MSL anomaly -> intensity change and the next central pressure;
- the Z gradient near the centre -> motion (a share of the geostrophic 500 hPa wind);
- the R (relative humidity) anomaly around the storm -> the rain-band extent (and, weakly,
  the intensity change: dry air erodes the storm).

Steering, intensity trends and the band extent persist from step to step, so past frames show
part of this information noisily. The true links and their coefficients are stored in the
file's ``causal_links`` attribute. The layout is documented in ``docs/data.md``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from mdcli import __version__
from mdcli.config import load_config, param, to_dict
from mdcli.errors import InputError
from mdcli.storage.atomic import atomic_path

FORMAT = "mdcli-tc"
FORMAT_VERSION = 1
VARIABLES = ("sst", "msl", "z", "r")
LINK_TARGETS = ("intensity_change", "motion_row", "motion_col", "rainband_extent",
                "central_pressure")
# stored value = (physical - offset) / scale
NORMALISATION = {
    "sst": {"offset": 28.0, "scale": 0.5, "units": "degC", "level": "surface"},
    "msl": {"offset": 1004.0, "scale": 6.0, "units": "hPa", "level": "mean sea level"},
    "z": {"offset": 5870.0, "scale": 20.0, "units": "m", "level": "500 hPa"},
    "r": {"offset": 62.0, "scale": 9.0, "units": "%", "level": "700 hPa"},
}
IR_REFERENCE_K, IR_SCALE_K = 240.0, 60.0  # ir = clip((240 K - Tb) / 60 K, -1, 1)
P_ENV_HPA, V_MIN, V_MAX = 1010.0, 12.0, 85.0
SAFFIR_SIMPSON_MS = (33.0, 43.0, 50.0, 58.0, 70.0)  # lower bounds of categories 1..5
GRAVITY, CORIOLIS = 9.81, 5.0e-5  # m s^-2, s^-1 (about 20 degrees N)
RHO_E = 1.15 * math.e  # air density (kg m^-3) times e, Holland's B = rho e V^2 / dP
SST_SIGMA, Z_SIGMA, ENV_SIGMA = 0.08, 0.1, 0.06  # Gaussian radii (domain widths) of features
RH_RING, RH_RING_WIDTH = 0.25, 0.07  # annulus (domain widths) of the humidity feature


@dataclass
class PhysicsConfig:
    """Coefficients of the generator's dynamics (the true causal links)."""

    sst_coupling: float = param(3.0, ge=0, help="intensity change (m/s per step) per degC "
                                                "of SST anomaly near the centre")
    msl_coupling: float = param(0.15, ge=0, help="intensity gain (m/s per step) per hPa of "
                                                "environmental MSL below 1010 hPa")
    humidity_coupling: float = param(0.03, ge=0, help="intensity change (m/s per step) per "
                                                      "% of R anomaly around the storm")
    steering: float = param(0.7, ge=0, help="share of the geostrophic 500 hPa wind that "
                                            "moves the storm")
    rainband_coupling: float = param(0.006, ge=0, help="equilibrium rain-band extent "
                                                       "(domain widths) per % of R anomaly")
    rainband_relaxation: float = param(0.5, gt=0, le=1, help="share of the way the band "
                                                             "extent moves to equilibrium per step")
    intensity_persistence: float = param(0.4, ge=0, lt=1, help="share of the last intensity "
                                                               "change that carries on")
    intensity_relaxation: float = param(0.03, ge=0, lt=1, help="pull towards 45 m/s per step")
    field_persistence: float = param(0.9, ge=0, lt=1, help="AR(1) coefficient of the MSL, Z "
                                                           "and R anomaly amplitudes per step")
    sst_persistence: float = param(0.7, ge=0, lt=1, help="AR(1) coefficient of the SST "
                                                         "anomaly amplitudes per step")
    intensity_noise: float = param(0.8, ge=0, help="m/s per step")
    motion_noise: float = param(0.002, ge=0, help="domain widths per step")
    ir_noise: float = param(1.0, ge=0, help="instrument noise of the IR frames (K)")


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
    """Checks the schema cannot express: the frame size."""
    if cfg.size < 32 or cfg.size % 16:
        raise InputError(f"config key 'size' (--size): got {cfg.size}, expected a multiple of "
                         f"16 >= 32 (64 or 128 for research data)")


def check_output(out: Path) -> None:
    """``out`` must be a file path whose existing ancestors are folders."""
    if out.is_dir():
        raise InputError(f"--out {out}: is a directory, expected an HDF5 file path")
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise InputError(f"--out {out}: {parent} is a file, expected a folder")
            break


# ----------------------------------------------------------------------------- fields
class _Patches:
    """Drifting Gaussian patches with AR(1) amplitudes: a smooth random field per storm."""

    def __init__(self, rng: np.random.Generator, n_storms: int, count: int, amplitude: float,
                 width: tuple[float, float], persistence: float) -> None:
        self.rng, self.amplitude, self.persistence = rng, amplitude, persistence
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

    def step(self) -> None:
        p = self.persistence
        self.amp = p * self.amp + math.sqrt(1 - p * p) * self.rng.normal(
            0.0, self.amplitude, self.amp.shape)
        self.centre += self.drift


class _Plane:
    """A uniform gradient ``[S, 2]`` (per domain width) whose components follow AR(1)."""

    def __init__(self, rng: np.random.Generator, n_storms: int, std: float, mean: tuple,
                 persistence: float) -> None:
        self.rng, self.std, self.persistence = rng, std, persistence
        self.mean = np.asarray(mean, dtype=float)
        self.value = self.mean + rng.normal(0.0, std, (n_storms, 2))

    def field(self, grid: np.ndarray) -> np.ndarray:
        d = grid - 0.5
        return self.value[:, 0, None, None] * d[:, None] + self.value[:, 1, None, None] * d

    def step(self) -> None:
        p = self.persistence
        noise = self.rng.normal(0.0, self.std, self.value.shape)
        self.value = self.mean + p * (self.value - self.mean) + math.sqrt(1 - p * p) * noise


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int, int],
                  length: float) -> np.ndarray:
    """``[S, H, W]`` unit-variance Gaussian noise correlated over ``length`` domain widths."""
    n = shape[-1]
    k = np.fft.fftfreq(n)[:, None] ** 2 + np.fft.rfftfreq(n)[None, :] ** 2
    kernel = np.exp(-2.0 * (math.pi * length * n) ** 2 * k)
    field = np.fft.irfft2(np.fft.rfft2(rng.standard_normal(shape)) * kernel, s=shape[-2:])
    return field / field.std(axis=(1, 2), keepdims=True)


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


def category(intensity: np.ndarray) -> np.ndarray:
    """Saffir-Simpson-like category 0..5 of max winds (m/s); 0 = tropical storm or weaker."""
    return np.searchsorted(np.asarray(SAFFIR_SIMPSON_MS), intensity, side="right")


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


def _polar(grid: np.ndarray, centre: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance ``[S, H, W]`` (domain widths) and math angle (north up) from ``centre``."""
    dy = grid[None, :, None] - centre[:, 0, None, None]
    dx = grid[None, None, :] - centre[:, 1, None, None]
    return np.hypot(dy, dx), np.arctan2(-dy, dx)


def col(values: np.ndarray) -> np.ndarray:
    """Per-storm values ``[S]`` as ``[S, 1, 1]`` to broadcast over frames."""
    return values[:, None, None]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def render_ir(storms: _Storms, r: np.ndarray, theta: np.ndarray, texture: np.ndarray,
              noise: np.ndarray) -> np.ndarray:
    """Brightness temperature (K) ``[S, H, W]``: clear sky, overcast, eye, eyewall, bands."""
    v, rm = storms.intensity, storms.rmax()
    strength = np.clip((v - 15.0) / 60.0, 0.0, 1.0)
    overcast = _sigmoid((col(rm * (1.8 + 0.8 * strength)) - r) / 0.012)
    spiral = col(storms.phase) - np.log(np.maximum(r, 1e-3) / col(rm)) / np.tan(col(storms.pitch))
    bands = ((1.0 + np.cos(col(storms.arms) * (theta - spiral))) / 2.0) ** 4
    bands *= _sigmoid((col(storms.extent) - r) / 0.02) * _sigmoid((r - col(1.5 * rm)) / 0.02)
    cloud = np.maximum(overcast, 0.9 * bands) * (1.0 + 0.2 * texture)
    clarity = _sigmoid((v - 33.0) / 3.0)
    cloud *= 1.0 - col(clarity) * np.exp(-(r / col(0.6 * rm)) ** 4)
    cloud = np.maximum(np.clip(cloud, 0.0, 1.0), 0.5 * np.clip(texture - 1.3, 0.0, 1.0))
    clear = 297.0 + 1.5 * texture
    top = col(225.0 - 32.0 * strength)
    eyewall = 10.0 * col(strength) * np.exp(-((r - col(rm)) / col(0.4 * rm)) ** 2)
    return clear - cloud * (clear - top + eyewall) + noise


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
class _Simulation:
    """Steps storms and their environment; ``frame()`` renders the current time step."""

    def __init__(self, cfg: SynthTCConfig) -> None:
        self.cfg, self.phys = cfg, cfg.physics
        self.rng = np.random.default_rng(cfg.seed)
        s, p = cfg.n_storms, cfg.physics.field_persistence
        self.grid = (np.arange(cfg.size) + 0.5) / cfg.size
        self.pixel_m = cfg.domain_km * 1000.0 / cfg.size
        self.dt_s = cfg.dt_hours * 3600.0
        self.storms = _Storms.draw(self.rng, s)
        self.sst = _Patches(self.rng, s, 8, 1.5, (0.05, 0.12), cfg.physics.sst_persistence)
        self.z_plane = _Plane(self.rng, s, 40.0, (-10.0, 0.0), p)
        self.z_patches = _Patches(self.rng, s, 4, 12.0, (0.2, 0.35), p)
        self.msl = _Patches(self.rng, s, 4, 3.0, (0.2, 0.4), p)
        self.rh = _Patches(self.rng, s, 6, 18.0, (0.08, 0.2), p)
        self.texture = _smooth_noise(self.rng, (s, cfg.size, cfg.size), 0.03)

    def environment(self) -> dict[str, np.ndarray]:
        """Physical ERA5 fields without the storm: SST (warmer south), MSL, Z, R."""
        g = self.grid
        return {"sst": 28.0 + 0.8 * (g[:, None] - 0.5) + self.sst.field(g),
                "msl": P_ENV_HPA + self.msl.field(g),
                "z": NORMALISATION["z"]["offset"] + self.z_plane.field(g) + self.z_patches.field(g),
                "r": np.clip(60.0 + self.rh.field(g), 5.0, 100.0)}

    def frame(self) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray]]:
        """IR (K), physical ERA5 fields and the features that drive the next step."""
        st, g = self.storms, self.grid
        env = self.environment()
        r, theta = _polar(g, st.centre)
        own = _storm_fields(st, r)
        fields = {"sst": env["sst"], "msl": env["msl"] + own["msl"], "z": env["z"] + own["z"],
                  "r": np.clip(env["r"] + own["r"], 5.0, 100.0)}
        noise = self.rng.normal(0.0, self.phys.ir_noise, r.shape)
        ir = render_ir(st, r, theta, self.texture, noise)
        ring = np.exp(-0.5 * ((r - RH_RING) / RH_RING_WIDTH) ** 2)
        grad = np.stack(np.gradient(fields["z"], axis=(1, 2)), axis=1) / self.pixel_m
        features = {
            "sst": _gauss_mean(fields["sst"] - 28.0, g, st.centre, SST_SIGMA),
            "msl": _gauss_mean(env["msl"] - P_ENV_HPA, g, st.centre, ENV_SIGMA),
            "z": _gauss_mean(grad, g, st.centre, Z_SIGMA),  # [S, 2] m per m along row, col
            "r": (ring * (fields["r"] - 60.0)).sum((1, 2)) / ring.sum((1, 2)),
        }
        return ir, fields, features

    def motion(self, grad: np.ndarray) -> np.ndarray:
        """``[S, 2]`` steering displacement (domain widths per step) from ``grad`` (m/m)."""
        k = self.phys.steering * GRAVITY / CORIOLIS * self.dt_s / (self.cfg.domain_km * 1000.0)
        return k * np.stack([-grad[:, 1], grad[:, 0]], axis=1)

    def step(self, features: dict[str, np.ndarray]) -> None:
        """Advance storms and environment by one time step, driven by ``features``."""
        st, ph, rng, n = self.storms, self.phys, self.rng, self.cfg.n_storms
        change = (ph.intensity_persistence * st.last_change
                  + ph.sst_coupling * features["sst"] - ph.msl_coupling * features["msl"]
                  + ph.humidity_coupling * features["r"]
                  - ph.intensity_relaxation * (st.intensity - 45.0)
                  + rng.normal(0.0, ph.intensity_noise, n))
        new = np.clip(st.intensity + change, V_MIN, V_MAX)
        st.last_change, st.intensity = new - st.intensity, new
        beta_drift = np.array([-0.003, -0.002])  # north-westward, domain widths per step
        move = self.motion(features["z"]) + beta_drift + rng.normal(0.0, ph.motion_noise, (n, 2))
        st.centre = np.clip(st.centre + move, 0.1, 0.9)
        target = 0.28 + ph.rainband_coupling * features["r"]
        st.extent = np.clip(st.extent + ph.rainband_relaxation * (target - st.extent)
                            + rng.normal(0.0, 0.01, n), 0.12, 0.45)
        st.phase = st.phase + st.spin
        for process in (self.sst, self.z_plane, self.z_patches, self.msl, self.rh):
            process.step()
        fresh = _smooth_noise(rng, self.texture.shape, 0.03)
        self.texture = 0.7 * self.texture + math.sqrt(1 - 0.49) * fresh


# ----------------------------------------------------------------------------- file
def _causal_links(cfg: SynthTCConfig, sim: _Simulation, feats: dict[str, np.ndarray],
                  targets: dict[str, np.ndarray]) -> dict:
    """The true direct links, their coefficients and standardised effects ``[4, 5]``."""
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
            "links": table}


def write_synth_tc(cfg: SynthTCConfig, out: str | Path) -> Path:
    """Simulate ``cfg`` and write the ``mdcli-tc`` HDF5 file ``out`` atomically."""
    out = Path(out)
    check_config(cfg)
    check_output(out)
    s, t, n = cfg.n_storms, cfg.frames, cfg.size
    sim = _Simulation(cfg)
    meta = {k: np.zeros((s, t), np.float32) for k in ("intensity", "pressure", "rmax", "extent")}
    centre = np.zeros((s, t, 2), np.float32)
    feats = {k: np.zeros((s, t)) for k in ("sst", "msl", "z_row", "z_col", "r")}
    try:
        with atomic_path(out) as tmp, h5py.File(tmp, "w") as h5:
            ir = h5.create_dataset("ir", (s, t, n, n), np.float32, chunks=(1, 1, n, n))
            era5 = {v: h5.create_dataset(f"era5/{v}", (s, t, n, n), np.float32,
                                         chunks=(1, 1, n, n)) for v in VARIABLES}
            for step in range(t):
                tb, fields, f = sim.frame()
                ir[:, step] = np.clip((IR_REFERENCE_K - tb) / IR_SCALE_K, -1.0, 1.0)
                for v in VARIABLES:
                    norm = NORMALISATION[v]
                    era5[v][:, step] = (fields[v] - norm["offset"]) / norm["scale"]
                st = sim.storms
                centre[:, step] = st.centre * n - 0.5
                meta["intensity"][:, step] = st.intensity
                meta["pressure"][:, step] = (P_ENV_HPA + f["msl"]
                                             - pressure_deficit(st.intensity))
                meta["rmax"][:, step] = st.rmax() * n
                meta["extent"][:, step] = st.extent * n
                for key in ("sst", "msl", "r"):
                    feats[key][:, step] = f[key]
                feats["z_row"][:, step], feats["z_col"][:, step] = (f["z"] * sim.pixel_m).T
                if step + 1 < t:
                    sim.step(f)
            _write_meta(h5, cfg, centre, meta)
            targets = {"intensity_change": np.diff(meta["intensity"], axis=1),
                       "motion_row": np.diff(centre[..., 0], axis=1),
                       "motion_col": np.diff(centre[..., 1], axis=1),
                       "rainband_extent": meta["extent"][:, 1:],
                       "central_pressure": meta["pressure"][:, 1:]}
            links = _causal_links(cfg, sim, {k: v[:, :-1] for k, v in feats.items()}, targets)
            _write_attrs(h5, cfg, links)
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


def write_meta_datasets(group: h5py.Group,
                        items: dict[str, tuple[np.ndarray, str, str]]) -> None:
    """Write ``/meta`` datasets ``name: (values, units, description)`` with their attributes
    (shared with :mod:`mdcli.data.era5_import`)."""
    for name, (values, units, text) in items.items():
        ds = group.create_dataset(name, data=values)
        ds.attrs["units"], ds.attrs["description"] = units, text


def ir_attrs() -> dict:
    """The attributes of ``/ir``: the layout's fixed brightness-temperature convention."""
    return {"units": "normalised brightness temperature",
            "normalisation": f"clip(({IR_REFERENCE_K:g} K - Tb) / {IR_SCALE_K:g} K, -1, 1): "
                             "cold cloud tops high",
            "offset": IR_REFERENCE_K, "scale": -IR_SCALE_K}


def era5_attrs(offset: float, scale: float, units: str, level: str) -> dict:
    """The attributes of one ``/era5/<variable>`` dataset: stored = (x - offset) / scale."""
    return {"units": units, "level": level, "offset": offset, "scale": scale,
            "normalisation": f"(x - {offset:g} {units}) / {scale:g} {units}"}


def layout_root_attrs() -> dict:
    """The root attributes that identify an ``mdcli-tc`` file."""
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "variables": list(VARIABLES)}


def _write_attrs(h5: h5py.File, cfg: SynthTCConfig, links: dict) -> None:
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
        "config": json.dumps(to_dict(cfg)), "causal_links": json.dumps(links)})


def generate_from_config(source: str | Path | None, out: str | Path,
                         overrides: Iterable[str] = ()) -> Path:
    """Load a synth-tc config (path or packaged name, e.g. ``data/tc_tiny``) and write ``out``."""
    return write_synth_tc(load_config(SynthTCConfig, source, overrides), out)
