from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_ships_the_configs_folder(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w",
                    str(tmp_path)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("mdcli-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {f"mdcli/configs/{p.relative_to(ROOT / 'configs').as_posix()}"
               for p in (ROOT / "configs").rglob("*.yml")}
    assert shipped and shipped <= names
    assert "mdcli/cli/app.py" in names
