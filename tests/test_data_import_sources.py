"""``mdcli data import`` with the files users have: curvilinear IR, CF coordinates and units
(``lev``/``plev`` in Pa, ``deg_C``, fractions), ERA5 + ERA5T ``expver``, one-level files,
renamed variables, zip downloads; and the silent-wrong-data cases, which must now be errors.
Values are checked pixel by pixel against the analytic fields of test_data_import."""

from __future__ import annotations

import importlib.util
import zipfile
from pathlib import Path

import numpy as np
import pytest

xr = pytest.importorskip("xarray")
pytest.importorskip("netCDF4")
pytest.importorskip("cf_xarray")

from mdcli.data.importing import import_tc  # noqa: E402
from mdcli.errors import InputError  # noqa: E402
from test_data_import import (  # noqa: E402
    ERA5_LAT,
    ERA5_LON,
    HOURS,
    SIZE,
    T0,
    VARS,
    WINDOW,
    al01_points,
    al02_points,
    check_values,
    era5_dataset,
    ir_times,
    make_inputs,
    phys,
    write_nc,
)

POINTS = [al01_points(), al02_points()]


@pytest.fixture
def inputs(tmp_path):
    return make_inputs(tmp_path)


def one_file(inputs, change=None, name="era5.nc", **kw):
    """All four variables in one file, ``change(ds) -> ds`` applied before writing."""
    ds = era5_dataset(VARS, HOURS, ERA5_LAT, ERA5_LON)
    if change is not None:
        ds = change(ds)
    inputs["era5"] = [write_nc(ds, inputs["tmp"] / name)]
    return import_tc(inputs["era5"], inputs["ir"], inputs["track"], inputs["out"], size=SIZE,
                     window_deg=WINDOW, **kw)


def test_curvilinear_ir_is_regridded_onto_the_window(inputs):
    """IR on a grid rotated by 30 degrees with 2-D lat/lon (y, x): the linear field is
    reproduced exactly by linear interpolation on the triangles of the pixel centres."""
    hours = np.array(ir_times("AL01"))
    i, j = np.meshgrid(np.arange(90.0), np.arange(110.0), indexing="ij")
    a = np.deg2rad(30.0)
    lat = 8.0 + 0.2 * (i * np.cos(a) + j * np.sin(a)) - 8.0
    lon = -95.0 + 0.2 * (-i * np.sin(a) + j * np.cos(a)) + 8.0
    tb = phys("ir", lat[None], lon[None], hours[:, None, None]).astype(np.float64)
    ds = xr.Dataset({"IRWIN": (("time", "y", "x"), tb, {"units": "K"})},
                    coords={"time": T0 + (hours * 3600).astype("timedelta64[s]"),
                            "lat": (("y", "x"), lat, {"units": "degrees_north"}),
                            "lon": (("y", "x"), lon, {"units": "degrees_east"})})
    (inputs["ir"] / "AL01.nc").unlink()
    write_nc(ds, inputs["ir"] / "AL01.nc", "time")
    out = import_tc(inputs["era5"], inputs["ir"], inputs["track"], inputs["out"], size=SIZE,
                    window_deg=WINDOW)
    check_values(out, POINTS)


def _to_pa_lev(ds, name):
    ds = ds.rename(pressure_level=name)
    return ds.assign_coords({name: (name, ds[name].values * 100.0, {"units": "Pa"})})


@pytest.mark.parametrize("change", [
    lambda ds: _to_pa_lev(ds, "lev"),
    lambda ds: _to_pa_lev(ds, "plev"),
    lambda ds: ds.assign(sst=(ds.sst.dims, ds.sst.values - 273.15, {"units": "deg_C"})),
    lambda ds: ds.assign(r=(ds.r.dims, ds.r.values / 100.0, {"units": "1"})),
    lambda ds: ds.assign(msl=(ds.msl.dims, ds.msl.values / 100.0, {"units": "mb"})),
    lambda ds: ds.assign(z=(ds.z.dims, ds.z.values, {"units": "m2 s-2"})),
], ids=["lev-Pa", "plev-Pa", "deg_C", "r-fraction", "msl-mb", "z-m2s-2"])
def test_cf_coordinates_and_units_give_the_right_values(inputs, change):
    check_values(one_file(inputs, change), POINTS)


def test_expver_merges_era5_and_era5t(inputs):
    """The archived layout: an ``expver`` dimension (1 = ERA5, 5 = ERA5T), each NaN where the
    other holds the data (ERA5 until 11:00, ERA5T afterwards)."""
    def split(ds):
        era5t = HOURS >= 12
        cubes = {}
        for v in VARS:
            a = ds[v]
            first = a.where(~xr.DataArray(era5t, dims="valid_time"))
            second = a.where(xr.DataArray(era5t, dims="valid_time"))
            cubes[v] = xr.concat([first, second], dim="expver").transpose("valid_time",
                                                                          "expver", ...)
            cubes[v].attrs = a.attrs
        return xr.Dataset(cubes).assign_coords(expver=("expver", np.array(["0001", "0005"])))
    check_values(one_file(inputs, split), POINTS)


def test_expver_prefers_era5_by_value_not_position(inputs):
    """Both expvers hold values and the dimension lists ERA5T (5, off by one unit) first:
    ERA5 (1) must still be used."""
    def both(ds):
        cubes = {}
        for v in VARS:
            cubes[v] = xr.concat([ds[v] + 1.0, ds[v]], dim="expver").transpose(
                "valid_time", "expver", ...)
            cubes[v].attrs = ds[v].attrs
        return xr.Dataset(cubes).assign_coords(expver=("expver", np.array(["0005", "0001"])))
    check_values(one_file(inputs, both), POINTS)


def test_one_level_files_with_level_option_and_renamed_variables(inputs):
    """z at 500 hPa and r at 700 hPa in files with no level coordinate; msl called slp."""
    full = era5_dataset(VARS, HOURS, ERA5_LAT, ERA5_LON)
    tmp = inputs["tmp"]
    sl = write_nc(full[["sst", "msl"]].rename(msl="slp"), tmp / "sl.nc")
    z = write_nc(full[["z"]].sel(pressure_level=500.0).drop_vars("pressure_level"), tmp / "z.nc")
    r = write_nc(full[["r"]].sel(pressure_level=700.0).drop_vars("pressure_level"), tmp / "r.nc")
    kw = {"size": SIZE, "window_deg": WINDOW}
    with pytest.raises(InputError, match=r"'z' has no pressure-level coordinate.*--level z=500"):
        import_tc([sl, z, r], inputs["ir"], inputs["track"], inputs["out"], variables="msl=slp",
                  **kw)
    with pytest.raises(InputError, match=r"variable 'msl' not found.*--var msl=NAME"):
        import_tc([sl, z, r], inputs["ir"], inputs["track"], inputs["out"], level="z=500,r=700",
                  **kw)
    out = import_tc([sl, z, r], inputs["ir"], inputs["track"], inputs["out"],
                    variables="msl=slp", level="z=500,r=700", **kw)
    check_values(out, POINTS)


def test_zip_download_is_opened_directly(inputs):
    archive = inputs["tmp"] / "download.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for k, path in enumerate(inputs["era5"]):
            zf.write(path, f"data_stream-oper_stepType-instant_{k}.nc")
    out = import_tc([archive], inputs["ir"], inputs["track"], inputs["out"], size=SIZE,
                    window_deg=WINDOW)
    check_values(out, POINTS)


def _no_units(var, scale):
    def change(ds):
        values = ds[var].values * scale
        return ds.assign({var: (ds[var].dims, values, {})})
    return change


def _months_since(ds):
    ds = ds.isel(valid_time=slice(0, 3))
    ds["valid_time"] = ("valid_time", np.arange(3.0), {"units": "months since 2005-08-01"})
    return ds


@pytest.mark.parametrize("change, words", [
    (lambda ds: ds.drop_vars("latitude"), ["variable 'sst'", "dimension 'latitude' has no "
                                                            "coordinate values"]),
    (_no_units("r", 0.01), ["variable 'r'", "no units attribute", "values 0.", "expected "
                                                                             "0..110 percent"]),
    (_no_units("msl", 0.01), ["variable 'msl'", "values 9.", "expected 850..1090 hPa"]),
    (lambda ds: ds.assign(sst=(ds.sst.dims, ds.sst.values, {"units": "degC"})),
     ["variable 'sst'", "units 'degC'", "values 2", "expected -5..45 degC"]),
    (lambda ds: ds.assign(msl=(ds.msl.dims, ds.msl.values, {"units": "K"})),
     ["variable 'msl'", "units 'K'", "expected Pa or hPa"]),
    (lambda ds: ds.assign_coords(pressure_level=("pressure_level", [50000.0, 70000, 85000])),
     ["level 'pressure_level' has values up to 85000", "no units"]),
    (_months_since, ["'months since 2005-08-01'", "no fixed length"]),
    (_no_units("z", 1 / 9.80665), ["variable 'z'", "no units attribute", "values 5",
                                   "expected 3480", "7668"]),
    (lambda ds: ds.assign(z=(ds.z.dims, ds.z.values / 9.80665, {"units": "m**2 s**-2"})),
     ["variable 'z'", "units 'm**2 s**-2'", "a unit mix-up"]),
], ids=["no-lat-values", "r-fraction-no-units", "msl-no-units", "sst-K-as-degC", "msl-in-K",
        "level-Pa-no-units", "months-since", "z-metres-no-units", "z-metres-as-geopotential"])
def test_silent_wrong_data_is_now_an_error(run_cli, inputs, change, words):
    ds = change(era5_dataset(VARS, HOURS, ERA5_LAT, ERA5_LON))
    path = inputs["tmp"] / "bad.nc"
    ds.to_netcdf(path)
    out = inputs["out"]
    result = run_cli("data", "import", "--era5", path, "--ir", inputs["ir"], "--track",
                     inputs["track"], "--out", out, "--size", SIZE, "--window-deg", WINDOW)
    lines = result.err.strip().splitlines()
    assert result.code == 2 and lines[-1].startswith("mdcli: error:"), result.err
    for w in words:
        assert w in lines[-1], (w, lines[-1])
    assert not out.exists()


def hursat_b1_frames(folder, inputs, storm="AL01"):
    """AL01's frames as HURSAT-B1 files (one per frame, shipped names), plus a second
    satellite at 09:00 seen at a larger angle with values 30 K off: it must not be used."""
    ds = xr.open_dataset(inputs["ir"] / f"{storm}.nc").load()
    (inputs["ir"] / f"{storm}.nc").unlink()
    names = []
    for k, t in enumerate(ds.time.values.astype("datetime64[m]").astype(object)):
        frame = ds.isel(time=[k])
        name = f"{storm}.ALPHA.{t:%Y.%m.%d.%H%M}.12.GOE-12.117.hursat-b1.v06.nc"
        write_nc(frame, folder / name, "time")
        names.append(name)
        if t.hour == 9:
            worse = frame.assign(IRWIN=frame.IRWIN + 30.0)
            name = f"{storm}.ALPHA.{t:%Y.%m.%d.%H%M}.55.MET-5.120.hursat-b1.v06.nc"
            write_nc(worse, folder / name, "time")
            names.append(name)
    return names


@pytest.mark.parametrize("shipped", ["tar.gz", "flat"])
def test_hursat_b1_as_shipped(inputs, shipped):
    import tarfile

    import h5py

    if shipped == "flat":
        hursat_b1_frames(inputs["ir"], inputs)
    else:
        staging = inputs["tmp"] / "staging"
        staging.mkdir()
        names = hursat_b1_frames(staging, inputs)
        with tarfile.open(inputs["ir"] / "AL01.ALPHA.2005.tar.gz", "w:gz") as tar:
            for n in names:
                tar.add(staging / n, arcname=f"AL01/{n}")
    out = import_tc(inputs["era5"], inputs["ir"], inputs["track"], inputs["out"], size=SIZE,
                    window_deg=WINDOW)
    check_values(out, POINTS)
    with h5py.File(out) as h5:
        assert [s.decode() for s in h5["meta/ir_satellite"][0]] == ["GOE-12"] * 5
        np.testing.assert_array_equal(h5["meta/ir_angle"][0], 12.0)
        assert h5["meta/ir_satellite"][1, 0] == b"" and np.isnan(h5["meta/ir_angle"][1]).all()


PARAM_ID = {"sst": 34, "msl": 151, "z": 129, "r": 157}  # ECMWF parameter table


def write_grib(path, hours, fields=(("sst", 0), ("msl", 0), ("z", 500), ("z", 700),
                                    ("r", 500), ("r", 700))):
    """ERA5 as the CDS's default GRIB2 (ecCodes samples, ECMWF short names): sst and msl on
    single levels, z and r on 500 and 700 hPa, the analytic fields in ERA5's units."""
    eccodes = pytest.importorskip("eccodes")
    pytest.importorskip("cfgrib")
    from test_data_import import to_file_units

    lat2, lon2 = ERA5_LAT[:, None], ERA5_LON[None, :]
    keys = (("Ni", ERA5_LON.size), ("Nj", ERA5_LAT.size),
            ("latitudeOfFirstGridPointInDegrees", ERA5_LAT[0]),
            ("longitudeOfFirstGridPointInDegrees", ERA5_LON[0]),
            ("latitudeOfLastGridPointInDegrees", ERA5_LAT[-1]),
            ("longitudeOfLastGridPointInDegrees", ERA5_LON[-1]),
            ("iDirectionIncrementInDegrees", 0.5), ("jDirectionIncrementInDegrees", 0.5),
            ("jScansPositively", 0))
    with open(path, "wb") as f:
        for h in hours:
            stamp = (T0 + np.timedelta64(int(h * 60), "m")).astype(object)
            for var, level in fields:
                gid = eccodes.codes_grib_new_from_samples(
                    "regular_ll_pl_grib2" if level else "regular_ll_sfc_grib2")
                eccodes.codes_set(gid, "centre", "ecmf")
                for k, v in (*keys, ("dataDate", int(f"{stamp:%Y%m%d}")),
                             ("dataTime", stamp.hour * 100), ("paramId", PARAM_ID[var]),
                             ("bitsPerValue", 24)):
                    eccodes.codes_set(gid, k, v)
                if level:
                    eccodes.codes_set(gid, "level", level)
                field = phys(var, lat2, lon2, h, level or None) + 0 * lat2 * lon2
                eccodes.codes_set_values(gid, to_file_units(var, field).ravel())
                eccodes.codes_write(gid, f)
                eccodes.codes_release(gid)
    return path


def test_grib_download(inputs):
    grib = write_grib(inputs["tmp"] / "era5.grib", HOURS)
    out = import_tc([grib], inputs["ir"], inputs["track"], inputs["out"], size=SIZE,
                    window_deg=WINDOW)
    check_values(out, POINTS)


def test_one_level_grib_files_take_the_level_from_grib(inputs):
    """z only at 500 hPa and r only at 700 hPa: cfgrib's scalar isobaricInhPa gives the level."""
    tmp = inputs["tmp"]
    files = [write_grib(tmp / "sl.grib", HOURS, (("sst", 0), ("msl", 0))),
             write_grib(tmp / "z.grib", HOURS, (("z", 500),)),
             write_grib(tmp / "r.grib", HOURS, (("r", 700),))]
    out = import_tc(files, inputs["ir"], inputs["track"], inputs["out"], size=SIZE,
                    window_deg=WINDOW)
    check_values(out, POINTS)
    with pytest.raises(InputError, match=r"'z' has no 850 hPa level \(it has 500 hPa\)"):
        import_tc(files, inputs["ir"], inputs["track"], inputs["out"], size=SIZE,
                  window_deg=WINDOW, levels="z=850")


def test_hurdat2_track_end_to_end_and_storm_selection(run_cli, inputs):
    """AL01's points as a HURDAT2 entry (knots, mb) next to another storm; --storm keeps one."""
    lines = ["AL012005,              ALPHA,      5,"]
    for k, (lat, lon, _) in enumerate(al01_points()):
        lines.append(f"20050823, {3 + 3 * k:02d}00,  , TS, {lat:4.1f}N, {-lon:5.1f}W, "
                     f"{40 + 10 * k:3d}, {1000 - 4 * k:4d}, " + ", ".join(["-999"] * 12) + ",")
    lines += ["AL022005,               BETA,      1,",
              "20050823, 0000,  , TD, 22.0N,  75.0W,  25, 1009, " + ", ".join(["-999"] * 12)]
    track = inputs["tmp"] / "hurdat2.txt"
    track.write_text("\n".join(lines) + "\n")
    (inputs["ir"] / "AL01.nc").rename(inputs["ir"] / "AL012005.nc")
    result = run_cli("data", "import", "--era5", *[x for p in inputs["era5"] for x in
                                                   ("--era5", p)][1:],
                     "--ir", inputs["ir"], "--track", track, "--storm", "ALPHA:2005",
                     "--out", inputs["out"], "--size", SIZE, "--window-deg", WINDOW)
    assert result.code == 0, result.err
    import h5py

    check_values(inputs["out"], [al01_points()])
    with h5py.File(inputs["out"]) as h5:
        assert [s.decode() for s in h5["meta/storm_name"]] == ["AL012005"]
        np.testing.assert_allclose(h5["meta/intensity"][0],
                                   (40 + 10 * np.arange(5)) * 1852 / 3600, rtol=1e-6)
        np.testing.assert_allclose(h5["meta/pressure"][0], 1000 - 4 * np.arange(5))


def test_data_info_on_downloads(run_cli, inputs):
    ds = era5_dataset(VARS, HOURS, ERA5_LAT, ERA5_LON)
    nc3 = inputs["tmp"] / "old.nc"
    ds.to_netcdf(nc3, format="NETCDF3_CLASSIC")
    archive = inputs["tmp"] / "download.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(inputs["era5"][0], "sl.nc")
    for path, head in ((inputs["era5"][1], "NetCDF-4"), (nc3, "netCDF-3"),
                       (archive, "NetCDF-4")):
        result = run_cli("data", "info", path)
        assert result.code == 0, result.err
        assert head in result.out and "time 'valid_time': " in result.out, result.out
        assert "latitude 'latitude': 41 values, 10 .. 30 degrees_north" in result.out
        assert "sst(" in result.out or "z(" in result.out
    assert "vertical 'pressure_level': 3 values, 500 .. 850 hPa" in run_cli(
        "data", "info", nc3).out
    if importlib.util.find_spec("cfgrib") and importlib.util.find_spec("eccodes"):
        grib = write_grib(inputs["tmp"] / "e.grib", HOURS[:2])
        result = run_cli("data", "info", grib)
        assert result.code == 0 and "GRIB2" in result.out and "msl(" in result.out, result.out


GRIDS = Path(__file__).parent / "data" / "grids"


@pytest.mark.parametrize("name, words", [
    ("sstdata_netcdf.nc", ["variable 'sst'", "time 'time' (units 'Month') is not decoded"]),
    ("hgt.nc", ["time 'time' is in 'months since 1958-1-1 00:00:00'", "no fixed length"]),
])
def test_real_ncl_fields_get_one_line(run_cli, tmp_path, name, words):
    """Real NCEP/NCAR files (libncarg-data): the reason each cannot serve as ERA5 is named."""
    result = run_cli("data", "import", "--era5", GRIDS / name, "--ir", tmp_path, "--track",
                     GRIDS.parent / "tracks" / "andrew_1992_climada.csv", "--out",
                     tmp_path / "o.h5")
    lines = result.err.strip().splitlines()
    assert result.code == 2 and len(lines) == 1, result.err
    for w in words:
        assert w in lines[0], (w, lines[0])
    assert not (tmp_path / "o.h5").exists()


def test_data_info_on_a_real_file_with_coordinates_as_data_variables(run_cli):
    """``lat``/``lon`` stored as data variables on dims ``latitude``/``longitude`` are found by
    their units (not read as 0..n-1)."""
    result = run_cli("data", "info", GRIDS / "sstdata_netcdf.nc")
    assert result.code == 0, result.err
    assert "netCDF-3, dims time=2, latitude=91, longitude=181" in result.out
    assert "latitude 'lat': 91 values, -90 .. 90 degrees_north" in result.out
    assert "longitude 'lon': 181 values, 0 .. 360 degrees_east" in result.out
    assert "sst('time', 'latitude', 'longitude'): float32, deg_C" in result.out


@pytest.mark.slow
def test_hurdat2_hursat_tar_and_grib_import_into_a_file_train_reads(run_cli, inputs, tmp_path):
    """The README's path: a HURDAT2 track, NCEI's per-storm HURSAT-B1 tar.gz and a CDS GRIB
    download give a file ``mdcli train`` trains on (one storm, so every split is train)."""
    import tarfile

    staging = tmp_path / "staging"
    staging.mkdir()
    names = hursat_b1_frames(staging, inputs)
    with tarfile.open(inputs["ir"] / "AL012005.ALPHA.2005.tar.gz", "w:gz") as tar:
        for n in names:
            tar.add(staging / n, arcname=f"AL012005/{n}")
    lines = ["AL012005,              ALPHA,      5,"]
    for k, (lat, lon, _) in enumerate(al01_points()):
        lines.append(f"20050823, {3 + 3 * k:02d}00,  , TS, {lat:4.1f}N, {-lon:5.1f}W, "
                     f"{40 + 10 * k:3d}, {1000 - 4 * k:4d}, " + ", ".join(["-999"] * 12) + ",")
    track = tmp_path / "hurdat2.txt"
    track.write_text("\n".join(lines) + "\n")
    grib = write_grib(tmp_path / "era5.grib", HOURS)
    result = run_cli("data", "import", "--era5", grib, "--ir", inputs["ir"], "--track", track,
                     "--storm", "AL012005", "--out", inputs["out"], "--size", SIZE,
                     "--window-deg", WINDOW)
    assert result.code == 0, result.err
    check_values(inputs["out"], [al01_points()])
    result = run_cli("train", "-c", "train/tc_teacher_tiny", "--set", f"data.path={inputs['out']}",
                     "--set", "train.epochs=1", "--set", "data.val_split=train",
                     "--set", "data.test_split=train", "--set", "sampling.method=none",
                     "--set", "eval.controls=false",
                     "--device", "cpu", "--work-dir", tmp_path / "runs", "--name", "t")
    assert result.code == 0, result.err
    assert (tmp_path / "runs" / "train" / "t" / "checkpoints" / "last.pt").is_file()


@pytest.mark.parametrize("which", ["era5", "track", "ir"])
def test_out_naming_an_input_is_refused_and_the_input_kept(run_cli, inputs, which):
    target = {"era5": inputs["era5"][0], "track": inputs["track"],
              "ir": inputs["ir"] / "AL01.nc"}[which]
    before = target.read_bytes() if target.exists() else None
    era5 = [x for p in inputs["era5"] for x in ("--era5", p)]
    result = run_cli("data", "import", *era5, "--ir", inputs["ir"], "--track", inputs["track"],
                     "--out", target, "--size", SIZE, "--window-deg", WINDOW)
    assert result.code == 2 and result.err.strip().splitlines()[-1].startswith(
        f"mdcli: error: --out {target}:"), result.err
    assert (target.read_bytes() if target.exists() else None) == before


def test_truncated_archives_get_one_line(run_cli, inputs, tmp_path):
    import tarfile

    staging = tmp_path / "staging"
    staging.mkdir()
    names = hursat_b1_frames(staging, inputs)
    archive = inputs["ir"] / "AL01.ALPHA.2005.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for n in names:
            tar.add(staging / n, arcname=f"AL01/{n}")
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(InputError, match="cannot read as a tar archive"):
        import_tc(inputs["era5"], inputs["ir"], inputs["track"], inputs["out"], size=SIZE,
                  window_deg=WINDOW)
    download = tmp_path / "era5.zip"
    with zipfile.ZipFile(download, "w") as z:
        z.write(inputs["era5"][0], "sl.nc")
    download.write_bytes(download.read_bytes()[:200])
    result = run_cli("data", "info", download)
    assert result.code == 2 and "cannot read as a zip archive" in result.err, result.err


def test_a_character_cut_by_the_4096_byte_head_still_reads_as_text(tmp_path):
    from mdcli.data.importing.tracks import decode_head, detect_format

    header = b"storm_id,time,lat,lon,intensity,pressure\n"
    body = header + b"x" * (4095 - len(header)) + "é".encode() + b"\n"
    assert len(body[:4096]) == 4096 and body[4095:4097] == "é".encode()
    path = tmp_path / "track.csv"
    path.write_bytes(body)
    assert detect_format(path) == "csv"
    assert decode_head(body[:4096], complete=False).endswith("x")
    with pytest.raises(UnicodeDecodeError):
        decode_head(b"\x89PNG\r\n" + b"\xff" * 4090, complete=False)
