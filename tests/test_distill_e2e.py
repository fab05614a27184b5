"""End to end on a tiny generated cyclone file: train the teacher, distil, resume after an
interrupt, and DDP with two processes against one."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from mdcli.storage.checkpoint import load_checkpoint

pytestmark = pytest.mark.slow

SMALL = ["--set", "train.max_steps_per_epoch=2", "--set", "train.batch_size=4",
         "--set", "train.log_every=1",
         "--set", "eval.max_samples=4", "--set", "eval.noise_levels=2",
         "--set", "sampling.method=ddim", "--set", "sampling.steps=2",
         "--set", "sampling.num_samples=2", "--set", "eval.members=2"]
MODEL = ["--set", "model.ch=8", "--set", "model.enc_channels=8", "--set", "model.dim_head=4",
         "--set", "model.enc_base_channels=4"]


@pytest.fixture(scope="module")
def tc_file(tmp_path_factory):
    from mdcli.data.synth_tc import generate_from_config

    path = tmp_path_factory.mktemp("tc") / "tc.h5"
    return generate_from_config("data/tc_tiny", path, ["n_storms=20", "frames=6"])


def _teacher(run_cli, tc_file, work, name, *extra):
    return run_cli("-q", "train", "-c", "train/tc_teacher_tiny", "--work-dir", work, "--name",
                   name, "--set", f"data.path={tc_file}", "--set", "train.epochs=1",
                   *SMALL, *MODEL, *extra)


def test_train_then_distill_writes_the_documented_outputs(run_cli, tc_file, tmp_path):
    assert _teacher(run_cli, tc_file, tmp_path, "t").code == 0
    teacher = tmp_path / "train" / "t" / "checkpoints" / "last.pt"
    result = run_cli("-q", "distill", "-c", "distill/tc_tiny", "--teacher", teacher,
                     "--work-dir", tmp_path, "--name", "d", "--set", f"data.path={tc_file}",
                     "--set", "train.epochs=1", "--set", "causal.effect_every=1", *SMALL)
    assert result.code == 0, result.err
    run = tmp_path / "distill" / "d"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed"
    models = {"teacher", "teacher_other_storm_era5", "teacher_zero_era5", "teacher_no_era5",
              "student", "student_no_distill"}
    assert set(summary["eval"]["clean_estimate"]) == models | {"persistence", "extrapolation"}
    assert set(summary["eval"]["samples"]) == models | {"persistence", "extrapolation"}
    assert set(summary["eval"]["lead_closed"]) == {"clean_mse_pooled_top", "track_error_px",
                                                   "track_error_ensemble_px"}
    import h5py

    with h5py.File(run / "eval_samples.h5") as h5:
        assert set(h5["samples"]) == set(h5["ensemble"]) == models
        n = h5["target"].shape[0]
        assert h5["ensemble/student"].shape == (2, *h5["samples/student"].shape)
        np.testing.assert_array_equal(h5["ensemble/student"][0], h5["samples/student"][:])
        # the headline ensemble track, recomputed from the file with the extractor
        from mdcli.forecast.storms import storm_centre

        members = h5["ensemble/student"][:]  # [M, N, P, H, W]
        centres = storm_centre(members.reshape(-1, *members.shape[-2:])).reshape(
            *members.shape[:3], 2)
        want = np.linalg.norm(centres.mean(0) - h5["center"][:], axis=-1).mean()
        assert summary["eval"]["samples"]["student"]["track_error_ensemble_px"] == \
            pytest.approx(want, rel=1e-5)
        assert h5["cond"].shape[0] == h5["center"].shape[0] == h5["storm_id"].shape[0] == n
        assert h5.attrs["sampler"] == "ddim" and h5.attrs["steps"] == 2
        # the teacher's frames are read back from the teacher run: the same bits
        with h5py.File(tmp_path / "train" / "t" / "eval_samples.h5") as t:
            for name in models - {"student", "student_no_distill"}:
                np.testing.assert_array_equal(h5[f"ensemble/{name}"][()],
                                              t[f"ensemble/{name}"][()])
    assert "reusing the sampled frames of teacher, teacher_other_storm_era5" in \
        (run / "log.txt").read_text()
    assert len(summary["internal_sensitivity"]["student"]) == 4
    assert abs(sum(summary["variable_weights"]["student"].values()) - 1) < 1e-5
    assert (run / "figures" / "samples.png").is_file()
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert {"loss_score", "loss_distill", "loss_feat", "loss_causal", "lambda"} <= set(metrics[0])

    from mdcli.models.teacher_student import load_distill_models

    t_net, s_net, record = load_distill_models(run / "checkpoints" / "last.pt")
    assert record["teacher_path"] == str(teacher)
    frozen = load_checkpoint(teacher)["ema"]["shadow"]
    assert all(torch.equal(frozen[k], v) for k, v in t_net.state_dict().items())
    cfg = s_net.cfg
    x = torch.randn(2, cfg.pred_frames, cfg.image_size, cfg.image_size)
    cond = torch.randn(2, cfg.cond_frames, cfg.image_size, cfg.image_size)
    _, feats, _ = s_net(x, torch.full((2,), 0.5), cond, return_feat=True)
    assert feats["enc16"].shape[:2] == (2, 4)


def test_interrupt_saves_a_checkpoint_that_resumes_exactly(run_cli, tc_file, tmp_path,
                                                           monkeypatch):
    args = ("--set", "train.epochs=2")
    assert _teacher(run_cli, tc_file, tmp_path, "straight", *args).code == 0
    import mdcli.training.teacher as teacher_module

    real_step, calls = teacher_module.optimizer_step, []

    def interrupt_third_step(*a, **k):  # two optimiser steps per step: teacher, ERA5-free
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real_step(*a, **k)

    monkeypatch.setattr(teacher_module, "optimizer_step", interrupt_third_step)
    assert _teacher(run_cli, tc_file, tmp_path, "cut", *args).code == 130
    run = tmp_path / "train" / "cut"
    assert json.loads((run / "summary.json").read_text())["status"] == "interrupted"
    saved = load_checkpoint(run / "checkpoints" / "last.pt")
    assert (saved["epoch"], saved["batch_in_epoch"], saved["step"]) == (1, 0, 2)
    monkeypatch.setattr(teacher_module, "optimizer_step", real_step)
    result = run_cli("-q", "train", "--work-dir", tmp_path, "--name", "cut", "--resume")
    assert result.code == 0, result.err
    a = load_checkpoint(tmp_path / "train" / "straight" / "checkpoints" / "last.pt")
    b = load_checkpoint(run / "checkpoints" / "last.pt")
    assert a["step"] == b["step"] == 4
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, raw: dict, out: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), OMP_NUM_THREADS="1")
    torch.set_num_threads(1)
    from mdcli import dist
    from mdcli.config import from_dict
    from mdcli.runs import Run
    from mdcli.training.teacher import TeacherConfig, train_teacher

    ctx = dist.init_distributed("cpu")
    run = Run(Path(out), "train", enabled=ctx.is_main)
    summary = train_teacher(from_dict(TeacherConfig, raw), run, ctx)
    if ctx.is_main:
        with open(os.path.join(out, "losses.json"), "w") as handle:
            json.dump([h["train_loss"] for h in summary["history"]], handle)
    dist.cleanup()


def test_ddp_with_two_processes_matches_one(tc_file, tmp_path):
    from mdcli.config import read_yaml, resolve_config_path

    raw = read_yaml(resolve_config_path("train/tc_teacher_tiny"))
    raw["data"]["path"] = str(tc_file)
    raw["device"] = "cpu"
    raw["train"].update(epochs=1, max_steps_per_epoch=2, batch_size=4)
    raw["eval"].update(max_samples=4, noise_levels=2)
    raw["model"].update(ch=8, enc_channels=8, dim_head=4, enc_base_channels=4)
    from mdcli.config import from_dict
    from mdcli.dist import DistContext
    from mdcli.runs import Run
    from mdcli.training.teacher import TeacherConfig, train_teacher

    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    one = train_teacher(from_dict(TeacherConfig, raw), Run(tmp_path / "one", "train"),
                        DistContext(0, 1, 0, torch.device("cpu")))
    mp.spawn(_ddp_worker, args=(2, _free_port(), raw, str(tmp_path / "two")), nprocs=2,
             join=True)
    two = json.loads((tmp_path / "two" / "losses.json").read_text())
    assert [h["train_loss"] for h in one["history"]] == pytest.approx(two, rel=1e-4)
    w1 = load_checkpoint(tmp_path / "one" / "checkpoints" / "last.pt")["model"]
    w2 = load_checkpoint(tmp_path / "two" / "checkpoints" / "last.pt")["model"]
    assert all(torch.allclose(w1[k], w2[k], atol=1e-5) for k in w1)


def test_distill_resumes_exactly_after_an_interrupt(run_cli, tc_file, tmp_path, monkeypatch):
    assert _teacher(run_cli, tc_file, tmp_path, "t").code == 0
    teacher = tmp_path / "train" / "t" / "checkpoints" / "last.pt"

    def distill(name, *extra):
        return run_cli("-q", "distill", "-c", "distill/tc_tiny", "--teacher", teacher,
                       "--work-dir", tmp_path, "--name", name, "--set", f"data.path={tc_file}",
                       "--set", "train.epochs=2", *SMALL, "--set", "sampling.method=none",
                       *extra)

    assert distill("straight").code == 0
    import mdcli.training.distill as distill_module

    real_loss, calls = distill_module.distill_loss, []

    def interrupt_third(*a, **k):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_loss(*a, **k)

    monkeypatch.setattr(distill_module, "distill_loss", interrupt_third)
    assert distill("cut").code == 130
    monkeypatch.setattr(distill_module, "distill_loss", real_loss)
    result = run_cli("-q", "distill", "--work-dir", tmp_path, "--name", "cut", "--resume")
    assert result.code == 0, result.err
    a = load_checkpoint(tmp_path / "distill" / "straight" / "checkpoints" / "last.pt")
    b = load_checkpoint(tmp_path / "distill" / "cut" / "checkpoints" / "last.pt")
    for key in ("student", "student_ema", "baseline"):
        assert all(torch.equal(a[key][k], b[key][k]) for k in a[key]), key
    summary = json.loads((tmp_path / "distill" / "cut" / "summary.json").read_text())
    straight = json.loads((tmp_path / "distill" / "straight" / "summary.json").read_text())
    assert summary["eval"]["clean_estimate"]["student"] == pytest.approx(
        straight["eval"]["clean_estimate"]["student"])
