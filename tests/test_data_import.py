"""``mdcli data import``: ERA5-like NetCDF + HURSAT-like IR + a track CSV -> ``mdcli-tc``.

The inputs are written here with known analytic fields; bilinear-in-(lat, lon) and
linear-in-time functions are reproduced exactly by bilinear regridding and linear time
interpolation, so the expected values are computed independently at the pixel centres.
"""

from __future__ import annotations

import json
import subprocess
import sys

import h5py
import numpy as np
import pytest

xr = pytest.importorskip("xarray")
pytest.importorskip("netCDF4")

from mdcli.data.importing import (  # noqa: E402
    Axis,
    import_tc,
    parse_levels,
    require_netcdf,
    segments,
)
from mdcli.data.tc_dataset import TCWindows, read_tc_file  # noqa: E402
from mdcli.errors import InputError  # noqa: E402

G = 9.80665
T0 = np.datetime64("2005-08-23T00:00")
SIZE, WINDOW = 32, 4.0
VARS = ("sst", "msl", "z", "r")
LAYOUT = {"sst": (28.0, 0.5), "msl": (1004.0, 6.0), "z": (5870.0, 20.0), "r": (62.0, 9.0)}


# ----------------------------------------------------------------------------- analytic fields
def east(lon):
    return np.mod(lon, 360.0)


def phys(var, lat, lon, h, level=None):
    """Physical value in the layout's units (degC, hPa, m, %) at hours ``h`` after T0."""
    y, x = lat - 20.0, east(lon) - 280.0
    if var == "sst":
        return 27.0 + 0.05 * y + 0.03 * x + 0.01 * h + 0.001 * y * x
    if var == "msl":
        return 1005.0 + 0.3 * y - 0.2 * x + 0.05 * h
    if var == "z":
        return 5870.0 + 3.0 * y + 1.0 * x + 0.5 * h - 12.0 * (level - 500.0)  # ~ the real heights
    if var == "r":
        return 62.0 + 1.0 * y - 0.5 * x + 0.2 * h + 0.05 * (level - 700.0)
    if var == "ir":  # brightness temperature, K
        return 250.0 + 2.0 * y - 1.0 * x + 0.5 * h
    raise KeyError(var)


def to_file_units(var, value):
    return {"sst": value + 273.15, "msl": value * 100.0, "z": value * G, "r": value}[var]


FILE_UNITS = {"sst": "K", "msl": "Pa", "z": "m**2 s**-2", "r": "%"}


def era5_dataset(variables, hours, lat, lon, levels=(500.0, 700.0, 850.0), old=False,
                 func=phys):
    """An ERA5-like Dataset (CDS names, or old names with ``old=True``)."""
    tname, lname = ("time", "level") if old else ("valid_time", "pressure_level")
    times = T0 + (np.asarray(hours) * 3600).astype("timedelta64[s]")
    h = np.asarray(hours, float)[:, None, None]
    la, lo = np.asarray(lat)[None, :, None], np.asarray(lon)[None, None, :]
    data = {}
    for v in variables:
        if v in ("z", "r"):
            cube = np.stack([func(v, la, lo, h, lev) for lev in levels], axis=1)
            dims = (tname, lname, "latitude", "longitude")
        else:
            cube = func(v, la, lo, h) + 0 * la * lo
            dims = (tname, "latitude", "longitude")
        data[v] = (dims, to_file_units(v, cube), {"units": FILE_UNITS[v]})
    coords = {tname: times, "latitude": ("latitude", np.asarray(lat), {"units": "degrees_north"}),
              "longitude": ("longitude", np.asarray(lon), {"units": "degrees_east"}),
              "number": 0}
    if any(v in ("z", "r") for v in variables):
        coords[lname] = (lname, np.asarray(levels), {"units": "hPa"})
    return xr.Dataset(data, coords=coords)


def write_nc(ds, path, tname="valid_time"):
    ds.to_netcdf(path, encoding={tname: {"units": "seconds since 1970-01-01", "dtype": "int64"}})
    return path


ERA5_LAT = np.arange(30.0, 9.99, -0.5)    # descending, as in ERA5 downloads
ERA5_LON = np.arange(260.0, 300.01, 0.5)  # 0..360 convention
HOURS = np.arange(25.0)                   # hourly, 2005-08-23T00 .. 24T00
IR_LAT = np.arange(5.0, 35.01, 0.2)
IR_LON = np.arange(-105.0, -54.99, 0.2)   # -180..180 convention


def track_rows():
    rows = []
    for k in range(5):   # AL01: 03:00 .. 15:00, intensities and pressures given
        rows.append(("AL01", f"2005-08-23T{3 + 3 * k:02d}:00Z", 18.0 + 0.5 * k, -80.0 + 0.5 * k,
                     f"{20 + 5 * k}", f"{1000 - 4 * k}"))
    for k in range(7):   # AL02: 00:00 .. 18:00, no intensity
        rows.append(("AL02", f"2005-08-23T{3 * k:02d}:00", 22.0, -75.0 + 0.25 * k, "", ""))
    return rows


def write_track(path, rows=None, header="storm_id,time,lat,lon,intensity,pressure"):
    lines = [header] + [",".join(map(str, r)) for r in (rows or track_rows())]
    path.write_text("\n".join(lines) + "\n")
    return path


def ir_times(name):
    """Hours after T0 of the IR frames: AL01 exactly at the track times (plus a far one),
    AL02 20 minutes after each track time."""
    if name == "AL01":
        return [3.0 + 3 * k for k in range(5)] + [23.0]
    return [3.0 * k + 1 / 3 for k in range(7)]


def write_hursat(path, name, per_frame=False):
    hours = np.array(ir_times(name))
    la, lo = IR_LAT[None, :, None], IR_LON[None, None, :]
    tb = phys("ir", la, lo, hours[:, None, None]).astype(np.float32)
    times = T0 + (hours * 3600).astype("timedelta64[s]")
    ds = xr.Dataset({"IRWIN": (("time", "lat", "lon"), tb, {"units": "K"})},
                    coords={"time": times, "lat": IR_LAT, "lon": IR_LON})
    if not per_frame:
        return write_nc(ds, path / f"{name}.nc", "time")
    folder = path / name
    folder.mkdir()
    for k in range(len(hours)):  # HURSAT-B1 style: one file per frame
        write_nc(ds.isel(time=[k]), folder / f"{name}.{k:03d}.hursat-b1.nc", "time")
    return folder


def write_npy_frames(path, name, nan_frame=None):
    folder = path / name
    folder.mkdir()
    lat = IR_LAT[::-1]  # rows north to south
    (folder / "grid.json").write_text(json.dumps({"lat": [lat[0], lat[-1]],
                                                  "lon": [IR_LON[0], IR_LON[-1]]}))
    for k, h in enumerate(ir_times(name)):
        frame = phys("ir", lat[:, None], IR_LON[None, :], h).astype(np.float32)
        if k == nan_frame:
            frame[:] = np.nan
        stamp = (T0 + np.timedelta64(int(round(h * 60)), "m")).astype(object)
        np.save(folder / f"{stamp:%Y%m%d%H%M}.npy", frame)
    return folder


@pytest.fixture
def inputs(tmp_path):
    return make_inputs(tmp_path)


def make_inputs(tmp_path):
    """New-style ERA5 in three files (single levels; pressure levels split in time), IR as a
    HURSAT-like NetCDF (AL01) and an npy folder (AL02), and the track."""
    era5 = tmp_path / "era5"
    era5.mkdir()
    sl = write_nc(era5_dataset(("sst", "msl"), HOURS, ERA5_LAT, ERA5_LON), era5 / "sl.nc")
    pl_a = write_nc(era5_dataset(("z", "r"), HOURS[:13], ERA5_LAT, ERA5_LON), era5 / "pl_a.nc")
    pl_b = write_nc(era5_dataset(("z", "r"), HOURS[13:], ERA5_LAT, ERA5_LON), era5 / "pl_b.nc")
    ir = tmp_path / "ir"
    ir.mkdir()
    write_hursat(ir, "AL01")
    write_npy_frames(ir, "AL02")
    return {"era5": [sl, pl_a, pl_b], "ir": ir, "track": write_track(tmp_path / "track.csv"),
            "out": tmp_path / "out" / "tc.h5", "tmp": tmp_path}


def expected(var, lat, lon, h, level=None):
    """``[H, W]`` physical values at the pixel centres of the window centred on (lat, lon)."""
    edge = (np.arange(SIZE) + 0.5) * WINDOW / SIZE - WINDOW / 2
    return phys(var, (lat - edge)[:, None], (lon + edge)[None, :], h, level)


def stored(var, value, offset_scale):
    if var == "ir":
        return np.clip((240.0 - value) / 60.0, -1, 1)
    offset, scale = offset_scale
    return (value - offset) / scale


def check_values(path, storm_points, levels=(500.0, 700.0), norm=None):
    """Every pixel of every frame against the analytic fields; ``storm_points[row]`` lists
    ``(lat, lon, hours of the IR frame)``."""
    with h5py.File(path) as h5:
        for row, points in enumerate(storm_points):
            for f, (lat, lon, h) in enumerate(points):
                for var in ("ir", *VARS):
                    level = {"z": levels[0], "r": levels[1]}.get(var)
                    key = "ir" if var == "ir" else f"era5/{var}"
                    want = stored(var, expected(var, lat, lon, h, level),
                                  (norm or LAYOUT).get(var))
                    np.testing.assert_allclose(h5[key][row, f], want, atol=2e-4,
                                               err_msg=f"{var} row {row} frame {f}")


def al01_points():
    return [(18.0 + 0.5 * k, -80.0 + 0.5 * k, 3.0 + 3 * k) for k in range(5)]


def al02_points(first=0, n=5):
    return [(22.0, -75.0 + 0.25 * k, 3.0 * k + 1 / 3) for k in range(first, first + n)]


# ----------------------------------------------------------------------------- library
def test_import_layout_values_and_meta(inputs):
    out = import_tc(inputs["era5"], inputs["ir"], inputs["track"], inputs["out"], size=SIZE,
                    window_deg=WINDOW)
    data = read_tc_file(out)
    # default --frames: the shortest storm (5); AL02's last 2 of 7 points are dropped
    assert data["ir"].shape == (2, 5, SIZE, SIZE) and data["era5"].shape == (2, 4, 5, SIZE, SIZE)
    check_values(out, [al01_points(), al02_points()])
    with h5py.File(out) as h5:
        attrs = dict(h5.attrs)
        assert attrs["format"] == "mdcli-tc" and attrs["format_version"] == 1
        assert list(attrs["variables"]) == list(VARS)
        assert attrs["size"] == SIZE and attrs["frames"] == 5 and attrs["n_storms"] == 2
        assert attrs["dt_hours"] == 3.0 and attrs["window_deg"] == WINDOW
        assert json.loads(attrs["levels"]) == {"z": 500.0, "r": 700.0}
        for v, (offset, scale) in LAYOUT.items():
            a = h5[f"era5/{v}"].attrs
            assert (a["offset"], a["scale"]) == (offset, scale) and a["statistics"] == "layout"
        assert h5["era5/z"].attrs["level"] == "500 hPa" and h5["era5/r"].attrs["level"] == "700 hPa"
        assert h5["era5/sst"].attrs["units"] == "degC" and h5["era5/z"].attrs["units"] == "m"
        assert (h5["ir"].attrs["offset"], h5["ir"].attrs["scale"]) == (240.0, -60.0)
        meta = {k: h5[f"meta/{k}"][()] for k in h5["meta"]}
        for k in h5["meta"]:
            assert "units" in h5[f"meta/{k}"].attrs and h5[f"meta/{k}"].attrs["description"]
    assert list(meta["storm_id"]) == [0, 1]
    assert [s.decode() for s in meta["storm_name"]] == ["AL01", "AL02"]
    np.testing.assert_array_equal(meta["time"], np.tile(np.arange(5) * 3.0, (2, 1)))
    epoch0 = (T0 - np.datetime64("1970-01-01T00:00")).astype("timedelta64[h]").astype(float)
    np.testing.assert_allclose(meta["epoch_hours"][0], epoch0 + 3 + 3 * np.arange(5))
    np.testing.assert_allclose(meta["ir_time_offset"], [[0] * 5, [1 / 3] * 5], atol=1e-6)
    assert np.all(meta["center"] == SIZE / 2 - 0.5)
    np.testing.assert_allclose(meta["lat"][0], 18 + 0.5 * np.arange(5))
    np.testing.assert_allclose(meta["intensity"][0], [20, 25, 30, 35, 40])
    np.testing.assert_allclose(meta["pressure"][0], [1000, 996, 992, 988, 984])
    assert list(meta["category"][0]) == [0, 0, 0, 1, 1]  # from the intensity: 1 from 33 m/s
    assert np.isnan(meta["intensity"][1]).all() and (meta["category"][1] == -1).all()
    windows = TCWindows(out, "train", cond_frames=2, pred_frames=2, era5_steps=2,
                        split_fractions=(1.0, 0.0, 0.0))
    cond, era5, target, labels = windows[0]
    assert cond.shape == (2, SIZE, SIZE) and era5.shape == (4, 2, SIZE, SIZE)
    assert len(windows) == 2 * (5 - 2 - 2 + 1)
    assert list(out.parent.iterdir()) == [out]  # no temporary file left


def test_normalise_data_stores_mean_and_std(inputs):
    out = import_tc(inputs["era5"], inputs["ir"], inputs["track"], inputs["out"], size=SIZE,
                    window_deg=WINDOW, normalise="data", levels="z=850,r=850")
    points = [al01_points(), al02_points()]
    norm = {}
    for v in VARS:
        level = {"z": 850.0, "r": 850.0}.get(v)
        values = np.stack([expected(v, lat, lon, h, level) for row in points
                           for lat, lon, h in row])
        norm[v] = (values.mean(), values.std())
    with h5py.File(out) as h5:
        for v in VARS:
            a = h5[f"era5/{v}"].attrs
            np.testing.assert_allclose((a["offset"], a["scale"]), norm[v], rtol=1e-5)
            assert a["statistics"].startswith("mean and standard deviation")
            x = h5[f"era5/{v}"][()]
            assert abs(x.mean()) < 1e-3 and abs(x.std() - 1) < 1e-3
        assert h5["era5/z"].attrs["level"] == "850 hPa"
    check_values(out, points, levels=(850.0, 850.0), norm=norm)


def test_land_sst_is_filled_from_the_nearest_sea_pixel(inputs):
    """ERA5 SST is NaN over land: affected pixels take the nearest valid pixel's value, a window
    with no sea at all the layout's reference (stored 0)."""
    ds = xr.open_dataset(inputs["era5"][0]).load()
    ds["sst"] = ds["sst"].where(ds["longitude"] < 281.0)  # "land" from 79 W eastward
    inputs["era5"][0] = write_nc(ds, inputs["tmp"] / "era5" / "land.nc")
    out = import_tc(inputs["era5"], inputs["ir"], inputs["track"], inputs["out"], size=SIZE,
                    window_deg=WINDOW)
    with h5py.File(out) as h5:
        sst = h5["era5/sst"][0, 0] * 0.5 + 28.0  # AL01 at 80 W: window 82 W .. 78 W
        al02 = h5["era5/sst"][1]                 # AL02 near 75 W: all land
        assert h5["era5/sst"].attrs["filled_fraction"] > 0
    lons = -80.0 + (np.arange(SIZE) + 0.5) * WINDOW / SIZE - WINDOW / 2
    sea = lons < -79.5  # bilinear stencils entirely west of the first NaN column (79 W)
    np.testing.assert_allclose(sst[:, sea], expected("sst", 18.0, -80.0, 3.0)[:, sea], atol=1e-4)
    last = np.flatnonzero(sea)[-1]
    np.testing.assert_allclose(sst[:, ~sea], np.repeat(sst[:, last:last + 1], (~sea).sum(), 1),
                               atol=1e-5)
    assert np.all(al02 == 0.0)


# ----------------------------------------------------------------------------- CLI
def test_cli_old_names_single_file_hursat_frames_and_segments(run_cli, tmp_path):
    """Old ERA5 names (time, level), ascending latitude, -180..180 longitudes in one file; AL01
    as a folder of one-frame HURSAT files; --frames 3 cuts AL02 (7 points) into 2 segments."""
    ds = era5_dataset(VARS, HOURS, ERA5_LAT[::-1], ERA5_LON - 360.0, old=True)
    era5 = write_nc(ds, tmp_path / "era5.nc", "time")
    ir = tmp_path / "ir"
    ir.mkdir()
    write_hursat(ir, "AL01", per_frame=True)
    write_npy_frames(ir, "AL02")
    out = tmp_path / "tc.h5"
    result = run_cli("data", "import", "--era5", era5, "--ir", ir, "--track",
                     write_track(tmp_path / "track.csv"), "--out", out, "--size", SIZE,
                     "--window-deg", WINDOW, "--frames", 3)
    assert result.code == 0, result.err
    with h5py.File(out) as h5:
        assert h5["ir"].shape == (3, 3, SIZE, SIZE)
        assert list(h5["meta/storm_id"][()]) == [0, 1, 1]
        assert list(h5["meta/segment"][()]) == [0, 0, 1]
        np.testing.assert_array_equal(h5["meta/time"][()], np.tile([0.0, 3.0, 6.0], (3, 1)))
    check_values(out, [al01_points()[:3], al02_points(0, 3), al02_points(3, 3)])


def test_global_grid_wraps_across_the_seam(run_cli, tmp_path):
    """A global 0..359.5 grid and a storm at 0.5 W: the window takes columns from both ends."""
    def wavy(var, lat, lon, h, level=None):
        if var == "sst":
            return 28.0 + 2.0 * np.cos(np.deg2rad(lon)) + 0.05 * (lat - 20) + 0 * h
        return phys(var, lat, 280.0 + 0 * lon, h, level)

    lon = np.arange(0.0, 360.0, 0.5)
    era5 = write_nc(era5_dataset(VARS, HOURS, ERA5_LAT, lon, func=wavy), tmp_path / "g.nc")
    ir = tmp_path / "ir"
    ir.mkdir()
    write_hursat(ir, "AL01")
    rows = [("AL01", f"2005-08-23T{3 + 3 * k:02d}:00", 20.0, -0.5, "", "") for k in range(2)]
    global_ir_lon = IR_LON + 80.0  # IR grid -25..25 degrees east
    ds = xr.open_dataset(ir / "AL01.nc").load().assign_coords(lon=global_ir_lon)
    (ir / "AL01.nc").unlink()
    write_nc(ds, ir / "AL01.nc", "time")
    out = tmp_path / "tc.h5"
    result = run_cli("data", "import", "--era5", era5, "--ir", ir, "--track",
                     write_track(tmp_path / "t.csv", rows), "--out", out, "--size", SIZE,
                     "--window-deg", WINDOW)
    assert result.code == 0, result.err
    with h5py.File(out) as h5:
        sst = h5["era5/sst"][0, 0] * 0.5 + 28.0
    edge = (np.arange(SIZE) + 0.5) * WINDOW / SIZE - WINDOW / 2  # pixel centres
    want = wavy("sst", (20.0 - edge)[:, None], (-0.5 + edge)[None, :], 3.0)
    np.testing.assert_allclose(sst, want, atol=1e-3)  # cos is not bilinear: tolerance


def test_storm_following_ir_grid_with_2d_coordinates(inputs):
    """IR whose lat/lon are [time, n] (a grid that moves with the storm, dims (time, y, x))."""
    hours = np.array(ir_times("AL01"))
    lat = np.stack([np.arange(12.0, 26.01, 0.2) + 0.5 * k for k in range(len(hours))])
    lon = np.stack([np.arange(-88.0, -71.99, 0.2) + 0.5 * k for k in range(len(hours))])
    tb = phys("ir", lat[:, :, None], lon[:, None, :], hours[:, None, None])
    ds = xr.Dataset({"IRWIN": (("time", "y", "x"), tb.astype(np.float32), {"units": "K"})},
                    coords={"time": T0 + (hours * 3600).astype("timedelta64[s]"),
                            "lat": (("time", "y"), lat), "lon": (("time", "x"), lon)})
    (inputs["ir"] / "AL01.nc").unlink()
    write_nc(ds, inputs["ir"] / "AL01.nc", "time")
    out = import_tc(inputs["era5"], inputs["ir"], inputs["track"], inputs["out"], size=SIZE,
                    window_deg=WINDOW)
    check_values(out, [al01_points(), al02_points()])


# ----------------------------------------------------------------------------- bad inputs
def _drop_msl(inp):
    ds = era5_dataset(("sst",), HOURS, ERA5_LAT, ERA5_LON)
    inp["era5"][0] = write_nc(ds, inp["tmp"] / "era5" / "sst_only.nc")
    return []


def _short_era5(inp):
    for k, path in enumerate(inp["era5"]):
        ds = xr.open_dataset(path).load()
        inp["era5"][k] = write_nc(ds.isel(valid_time=slice(0, 7)), path.with_name(f"s{k}.nc"))
    return []


def _track(rows=None, header="storm_id,time,lat,lon,intensity,pressure"):
    def make(inp):
        write_track(inp["track"], rows, header)
        return []
    return make


def _no_ir_variable(inp):
    ds = xr.open_dataset(inp["ir"] / "AL01.nc").load().rename({"IRWIN": "WV"})
    (inp["ir"] / "AL01.nc").unlink()
    write_nc(ds, inp["ir"] / "AL01.nc", "time")
    return []


def _remove_al02(inp):
    for f in (inp["ir"] / "AL02").iterdir():
        f.unlink()
    (inp["ir"] / "AL02").rmdir()
    return []


def _nan_ir_frame(inp):
    _remove_al02(inp)
    write_npy_frames(inp["ir"], "AL02", nan_frame=4)
    return []


BAD_LAT = track_rows()
BAD_LAT[2] = ("AL01", "2005-08-23T09:00", "north", -79.0, "", "")
NORTH = [("AL01", "2005-08-23T03:00", 29.0, -80.0, "", ""),
         ("AL01", "2005-08-23T06:00", 29.0, -80.0, "", "")]
FAR_NORTH = [(s, t, 33.5, lon, i, p) for s, t, _, lon, i, p in NORTH]


@pytest.mark.parametrize("setup, args, words", [
    (lambda inp: [], ["--era5", "no_such.nc"], ["--era5", "no_such.nc", "not found"]),
    (_drop_msl, [], ["variable 'msl' not found", "sst_only.nc has sst"]),
    (lambda inp: [], ["--levels", "z=300"], ["'z'", "no 300 hPa level", "500, 700, 850"]),
    (lambda inp: [], ["--max-gap-hours", "0.2"], ["storm 'AL02'", "nearest IR frame",
                                                  "--max-gap-hours 0.2"]),
    (_short_era5, [], ["nearest ERA5", "2005-08-23T06:00", "--max-gap-hours 3"]),
    (_track(NORTH), [], ["storm 'AL01'", "outside the ERA5 grid", "latitude 10..30"]),
    (_track(FAR_NORTH), [], ["storm 'AL01'", "outside the IR grid", "AL01.nc"]),
    (_track(header="storm_id,time,lat,longitude,intensity,pressure"), [],
     ["--track", "missing column 'lon'"]),
    (_track(BAD_LAT), [], ["--track", "line 4", "column 'lat'", "'north'"]),
    (_remove_al02, [], ["--ir", "no IR frames for storm 'AL02'"]),
    (_no_ir_variable, [], ["no IR variable", "IRWIN", "the file has WV"]),
    (_nan_ir_frame, [], ["storm 'AL02'", "no valid pixels"]),
    (lambda inp: [], ["--size", "40"], ["--size", "multiple of 16"]),
    (lambda inp: [], ["--levels", "q=500"], ["--levels", "unknown variable 'q'"]),
    (lambda inp: [], ["--normalise", "zscore"], ["--normalise", "layout, data"]),
])
def test_bad_inputs_exit_2_with_one_line(run_cli, inputs, setup, args, words):
    setup(inputs)
    out = inputs["out"]
    out.parent.mkdir()
    out.write_bytes(b"previous file")
    base = {"--era5": [str(p) for p in inputs["era5"]], "--ir": [str(inputs["ir"])],
            "--track": [str(inputs["track"])], "--out": [str(out)], "--size": [str(SIZE)],
            "--window-deg": [str(WINDOW)]}
    for key, value in zip(args[::2], args[1::2], strict=True):
        base[key] = [value]
    argv = [x for key, values in base.items() for v in values for x in (key, v)]
    result = run_cli("data", "import", *argv)
    last = result.err.strip().splitlines()[-1]
    assert result.code == 2 and last.startswith("mdcli: error:"), result.err
    for w in words:
        assert w in last, (w, last)
    assert out.read_bytes() == b"previous file"  # untouched: nothing half-written
    assert list(out.parent.iterdir()) == [out]


def test_missing_netcdf_packages_name_the_extra(monkeypatch, run_cli, inputs):
    monkeypatch.setitem(sys.modules, "xarray", None)
    with pytest.raises(InputError, match=r"pip install mdcli\[netcdf\]"):
        require_netcdf()
    result = run_cli("data", "import", "--era5", inputs["era5"][0], "--ir", inputs["ir"],
                     "--track", inputs["track"], "--out", inputs["out"])
    assert result.code == 2 and "pip install mdcli[netcdf]" in result.err


def test_help_does_not_import_xarray():
    code = ("import sys; from mdcli.cli.app import app; "
            "assert 'xarray' not in sys.modules and 'netCDF4' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


# ----------------------------------------------------------------------------- helpers
def test_level_parsing_segments_and_periodic_longitudes():
    assert parse_levels(None) == {"z": 500.0, "r": 700.0}
    assert parse_levels("r=850") == {"z": 500.0, "r": 850.0}
    with pytest.raises(InputError, match="not VARIABLE=HPA"):
        parse_levels("z500")
    assert segments([5, 7, 2], 3) == [(0, 0), (1, 0), (1, 3)]
    ring = Axis("longitude", np.arange(0.0, 360.0, 1.0), "test")
    assert ring.periodic and not Axis("longitude", np.arange(0.0, 90.0), "test").periodic
    np.testing.assert_allclose(ring.locate(-0.5, np.array([-1.0, 0.0, 1.0])), [358.5, 359.5,
                                                                               360.5])
    lat = Axis("latitude", np.arange(30.0, 9.9, -0.5), "test")
    np.testing.assert_allclose(lat.locate(20.0, np.array([1.0, -1.0])), [18.0, 22.0])
    assert lat.locate(29.5, np.array([1.0])) is None
