"""Best tracks for ``mdcli data import``: real Andrew 1992 and Doaza 1988 (public-domain
NHC/IBTrACS data from the CLIMADA wheel, tests/data/tracks) read directly, and Andrew's points
rewritten in the exact HURDAT2 and IBTrACS v04 CSV/NetCDF layouts: every reader must give the
same track in m/s and hPa (knots converted with 1 kt = 1852/3600 m/s, computed here)."""

from __future__ import annotations

import csv
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from mdcli.data.importing.tracks import detect_format, read_track
from mdcli.errors import InputError

DATA = Path(__file__).parent / "data" / "tracks"
ANDREW = DATA / "andrew_1992_climada.csv"
DOAZA = DATA / "doaza_1988_climada.nc"
KT = 1852.0 / 3600.0
SS_KT = (64, 83, 96, 113, 137)  # Saffir-Simpson lower bounds of categories 1..5, knots
IBTRACS_COLUMNS = ("SID,SEASON,NUMBER,BASIN,SUBBASIN,NAME,ISO_TIME,NATURE,LAT,LON,WMO_WIND,"
                   "WMO_PRES,WMO_AGENCY,TRACK_TYPE,DIST2LAND,LANDFALL,IFLAG,USA_AGENCY,"
                   "USA_ATCF_ID,USA_LAT,USA_LON,USA_RECORD,USA_STATUS,USA_WIND,USA_PRES")
IBTRACS_UNITS = (" ,Year, , , , , , ,degrees_north,degrees_east,kts,mb, , ,km,km, , , , "
                 "degrees_north,degrees_east, , ,kts,mb")


def andrew():
    """Andrew's points straight from the CLIMADA file: (datetime, lat, lon, kt, mb)."""
    with open(ANDREW, newline="") as f:
        return [(datetime.strptime(r["isotime"].split(".")[0], "%Y%m%d%H"),
                 float(r["cgps_lat"]), float(r["cgps_lon"]), float(r["vmax"]), float(r["pcen"]))
                for r in csv.DictReader(f)]


def hours(stamp):
    return (stamp - datetime(1970, 1, 1)).total_seconds() / 3600.0


def write_hurdat2(path, points, truncate=0):
    def lat(x):
        return f"{abs(x):4.1f}{'N' if x >= 0 else 'S'}"

    def lon(x):
        return f"{abs(x):5.1f}{'W' if x < 0 else 'E'}"

    radii = ", ".join(["-999"] * 13)
    lines = [f"AL041992,             ANDREW,     {len(points)},"]
    for t, la, lo, kt, mb in points[:len(points) - truncate]:
        status = "HU" if kt >= 64 else "TS" if kt >= 34 else "TD"
        lines.append(f"{t:%Y%m%d}, {t:%H%M},  , {status}, {lat(la)}, {lon(lo)}, {kt:3.0f}, "
                     f"{mb:4.0f}, {radii},")
    path.write_text("\n".join(lines) + "\n")
    return path


def write_ibtracs_csv(path, points, usa_only=()):
    """IBTrACS v04 CSV rows (WMO fields blank at the indices ``usa_only``) plus a second storm."""
    rows = [IBTRACS_COLUMNS, IBTRACS_UNITS]
    for k, (t, la, lo, kt, mb) in enumerate(points):
        wmo = (" ", " ") if k in usa_only else (f"{kt:.0f}", f"{mb:.0f}")
        rows.append(f"1992230N11325,1992,33,NA,MM,ANDREW,{t:%Y-%m-%d %H:%M:%S},TS,{la:.4f},"
                    f"{lo:.4f},{wmo[0]},{wmo[1]},hurdat_atl,main,1000,1000,O____,hurdat_atl,"
                    f"AL041992,{la:.4f},{lo:.4f}, ,HU,{kt:.0f},{mb:.0f}")
    rows.append("1988021S12080,1988,12,SI,MM,DOAZA,1988-01-21 06:00:00,TS,-12.0,80.0,35,995,"
                "reunion,main,900,900,O____,jtwc_sh,SH061988,-12.0,80.0, ,TS,35,995")
    path.write_text("\n".join(rows) + "\n")
    return path


def write_ibtracs_nc(path, points):
    """The IBTrACS v04 NetCDF structure: storm x date_time, char ids, -9999 fills, kts/mb."""
    netCDF4 = pytest.importorskip("netCDF4")
    n = len(points) + 3  # padded like IBTrACS: unused date_time slots are fill values
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("storm", 1)
        ds.createDimension("date_time", n)
        ds.createDimension("char13", 13)
        ds.createDimension("char128", 128)
        sid = ds.createVariable("sid", "S1", ("storm", "char13"))
        sid[0] = netCDF4.stringtochar(np.array(["1992230N11325"], "S13"))
        name = ds.createVariable("name", "S1", ("storm", "char128"))
        name[0] = netCDF4.stringtochar(np.array(["ANDREW"], "S128"))
        ds.createVariable("season", "i2", ("storm",))[:] = [1992]
        time = ds.createVariable("time", "f8", ("storm", "date_time"), fill_value=-9999.0)
        time.units = "days since 1858-11-17 00:00:00"
        base = datetime(1858, 11, 17)
        time[0, :len(points)] = [(p[0] - base).total_seconds() / 86400 for p in points]
        for var, col, dtype, units in (("lat", 1, "f4", "degrees_north"),
                                       ("lon", 2, "f4", "degrees_east"),
                                       ("wmo_wind", 3, "i2", "kts"), ("wmo_pres", 4, "i2", "mb"),
                                       ("usa_wind", 3, "i2", "kts"),
                                       ("usa_pres", 4, "i2", "mb")):
            v = ds.createVariable(var, dtype, ("storm", "date_time"), fill_value=-9999)
            v.units = units
            v[0, :len(points)] = [p[col] for p in points]
    return path


@pytest.fixture
def tracks(tmp_path):
    pts = andrew()
    return {"climada-csv": ANDREW, "hurdat2": write_hurdat2(tmp_path / "hurdat2.txt", pts),
            "ibtracs-csv": write_ibtracs_csv(tmp_path / "ibtracs.csv", pts, usa_only=(3, 30)),
            "ibtracs-nc": write_ibtracs_nc(tmp_path / "ibtracs.nc", pts)}


def test_every_format_gives_andrew_in_m_per_s_and_hpa(tracks):
    pts = andrew()
    kt = np.array([p[3] for p in pts])
    for fmt, path in tracks.items():
        assert detect_format(path) == fmt
        storms = read_track(path, storms=["1992230N11325"] if fmt == "ibtracs-csv" else ())
        assert len(storms) == 1, fmt
        s = storms[0]
        np.testing.assert_allclose(s.hours, [hours(p[0]) for p in pts], err_msg=fmt)
        np.testing.assert_allclose(s.lat, [p[1] for p in pts], atol=1e-4, err_msg=fmt)
        np.testing.assert_allclose(s.lon, [p[2] for p in pts], atol=1e-4, err_msg=fmt)
        np.testing.assert_allclose(s.intensity, kt * KT, rtol=1e-9, err_msg=fmt)
        np.testing.assert_allclose(s.pressure, [p[4] for p in pts], err_msg=fmt)
        np.testing.assert_array_equal(s.category, np.searchsorted(SS_KT, kt, side="right"))
        assert (s.category == 5).sum() == 2  # not 17, as knots read as m/s would give
    assert max(p[3] for p in pts) == 150.0


def test_real_doaza_netcdf_units_from_attributes():
    netCDF4 = pytest.importorskip("netCDF4")
    (s,) = read_track(DOAZA)
    with netCDF4.Dataset(DOAZA) as ds:
        assert ds.max_sustained_wind_unit == "kn"
        wind = np.ma.filled(ds["max_sustained_wind"][:].astype(float), np.nan)
        pres = np.ma.filled(ds["central_pressure"][:].astype(float), np.nan)
    assert s.name == "1988021S12080" and len(s) == 93
    np.testing.assert_allclose(s.intensity, wind * KT)
    np.testing.assert_allclose(s.pressure, pres)


def test_storm_selection_by_sid_and_name_season(tracks):
    both = read_track(tracks["ibtracs-csv"])
    assert [s.name for s in both] == ["1992230N11325", "1988021S12080"]
    assert [s.name for s in read_track(tracks["ibtracs-csv"], storms=["doaza:1988"])] == [
        "1988021S12080"]
    assert [s.name for s in read_track(tracks["hurdat2"], storms=["ANDREW:1992"])] == [
        "AL041992"]
    with pytest.raises(InputError, match=r"--storm KATRINA:2005: no such storm .* "
                                         r"1992230N11325 \(ANDREW 1992\)"):
        read_track(tracks["ibtracs-csv"], storms=["KATRINA:2005"])


def _knots_as_m_per_s(tmp):
    rows = ["storm_id,time,lat,lon,intensity"] + [
        f"AL04,{t:%Y-%m-%dT%H:%M},{la},{lo},{kt}" for t, la, lo, kt, _ in andrew()]
    path = tmp / "knots.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def _hurdat2_truncated(tmp):
    return write_hurdat2(tmp / "short.txt", andrew(), truncate=2)


def _not_a_track_nc(tmp):
    netCDF4 = pytest.importorskip("netCDF4")
    path = tmp / "field.nc"
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("x", 2)
        ds.createVariable("sst", "f4", ("x",))[:] = [1, 2]
    return path


def _binary(tmp):
    path = tmp / "junk.bin"
    path.write_bytes(b"\x89\xff\x00\x01" * 64)
    return path


def _bad_ibtracs_units(tmp):
    path = write_ibtracs_csv(tmp / "ib.csv", andrew())
    text = path.read_text().splitlines()
    text[1] = text[1].replace(",kts,mb, , ,km", ",furlongs,mb, , ,km", 1)
    path.write_text("\n".join(text) + "\n")
    return path


@pytest.mark.parametrize("make, extra, words", [
    (_knots_as_m_per_s, [], ["line 27", "column 'intensity' is 110.0 m/s", "above 100 m/s",
                             "knots"]),
    (_hurdat2_truncated, [], ["storm AL041992 ends after 45 data lines", "announced 47"]),
    (_not_a_track_nc, [], ["not an IBTrACS", "it has sst"]),
    (_binary, [], ["neither text nor NetCDF"]),
    (_bad_ibtracs_units, [], ["line 2: column 'WMO_WIND'", "'furlongs'", "a speed"]),
    (lambda tmp: ANDREW, ["--track-format", "hurdat2"], ["line 1", "HURDAT2 header"]),
    (lambda tmp: ANDREW, ["--track-format", "ibtracs"], ["--track-format", "'ibtracs'",
                                                         "hurdat2"]),
    (lambda tmp: ANDREW, ["--storm", "AL041992"], ["--storm AL041992", "no such storm"]),
])
def test_bad_tracks_exit_2_with_one_line(run_cli, tmp_path, make, extra, words):
    """The track is read before any ERA5 file is opened: these fail on the track alone."""
    track = make(tmp_path)
    out = tmp_path / "out.h5"
    result = run_cli("data", "import", "--era5", tmp_path / "none.nc", "--ir", tmp_path,
                     "--track", track, "--out", out, *extra)
    lines = result.err.strip().splitlines()
    assert result.code == 2 and len(lines) == 1 and lines[0].startswith("mdcli: error:"), \
        result.err
    for w in words:
        assert w in lines[0], (w, lines[0])
    assert not out.exists()


def test_data_info_describes_tracks_and_refuses_as_import_does(run_cli, tracks, tmp_path):
    for path in (*tracks.values(), DOAZA):
        result = run_cli("data", "info", path)
        assert result.code == 0, result.err
        assert "best track" in result.out and "points" in result.out
    out = run_cli("data", "info", tracks["hurdat2"]).out
    assert "(hurdat2), 1 storm(s), 47 points, 1992-08-16T18:00 .. 1992-08-28T06:00" in out
    assert "peak intensity 77.2 m/s (AL041992)" in out and "category 5" in out
    good = tmp_path / "track.csv"
    good.write_text("storm_id,time,lat,lon,intensity\nAL01,2005-08-23T00:00,20,-80,30\n")
    assert run_cli("data", "info", good).code == 0  # was IndexError: pop from empty list
    bad = _knots_as_m_per_s(tmp_path)
    info = run_cli("data", "info", bad)
    imp = run_cli("data", "import", "--era5", tmp_path / "x.nc", "--ir", tmp_path, "--track",
                  bad, "--out", tmp_path / "o.h5")
    assert info.code == 2 and imp.code == 2
    assert info.err.strip().splitlines() == imp.err.strip().splitlines()
    assert len(info.err.strip().splitlines()) == 1
