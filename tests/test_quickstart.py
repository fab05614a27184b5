"""``mdcli quickstart`` end to end on its real tiny configs, then a re-run that reuses it all."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow

STEPS = ["data", "teacher", "student", "tsne", "align"]
ORDER = ["poor", "good", "excellent"]


def _grade(entry: dict) -> str:
    """The width-free rule of docs/align.md, written out from the report's metrics."""
    ratio = entry["cluster_variance_ratio"]
    spread = max(ratio, 1 / ratio)
    cos, rel = entry["cosine_similarity"], entry["relative_distance"]
    if cos > 0.85 and rel < 0.6 and spread < 1.3:
        return "excellent"
    if cos > 0.7 and rel < 1.0 and spread < 2.0:
        return "good"
    return "poor"


def _worst(grades: list[str]) -> str:
    return min(grades, key=ORDER.index)


@pytest.mark.timeout(1800)  # about 8 min on an idle 2-core CPU; CI machines may be shared
def test_quickstart_runs_the_chain_then_reuses_every_step(run_cli, tmp_path):
    first = run_cli("quickstart", "--work-dir", tmp_path, "--device", "cpu")
    assert first.code == 0, first.err
    summary = json.loads((tmp_path / "quickstart" / "quickstart" / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert list(summary["steps"]) == STEPS
    assert not any(step["reused"] for step in summary["steps"].values())
    skill = summary["skill"]
    assert {"teacher", "teacher_other_storm_era5", "teacher_zero_era5", "teacher_no_era5",
            "student", "student_no_distill", "persistence"} <= set(skill)
    assert skill["teacher"]["track_error_px"] < skill["teacher_other_storm_era5"][
        "track_error_px"]
    assert (tmp_path / summary["eval_samples"]).is_file()
    rep = json.loads((tmp_path / summary["alignment"]).read_text())
    assert summary["grade"] == rep["grade"] == _worst([_grade(e) for e in rep["sets"].values()])
    names = {p.split("/")[-1] for p in summary["figures"]}
    assert {"tsne_16_features.png", "tsne_32_features.png", "tsne_encoder_16_features.png",
            "tsne_encoder_32_features.png"} <= names
    for key in ("samples", "alignment"):
        assert (tmp_path / summary[key]).is_file()
    for name in ("teacher", "student", "tsne", "align"):
        run = json.loads((tmp_path / summary["steps"][name]["path"] / "summary.json").read_text())
        assert run["status"] == "completed"
    assert "alignment grade" in first.out and "forecast skill" in first.out

    again = run_cli("quickstart", "--work-dir", tmp_path, "--device", "cpu")
    assert again.code == 0, again.err
    rerun = json.loads((tmp_path / "quickstart" / "quickstart" / "summary.json").read_text())
    assert all(step["reused"] for step in rerun["steps"].values())
    assert rerun["skill"] == skill and rerun["grade"] == summary["grade"]
