from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from mdcli import dist


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _worker(rank: int, port: int, out: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    ctx = dist.init_distributed("cpu")
    value = dist.all_reduce_mean(torch.tensor([float(rank + 1)]))
    shared = dist.broadcast_object({"from": ctx.rank})
    if dist.is_main():
        with open(out, "w") as handle:
            handle.write(f"{ctx.world_size} {value.item()} {shared['from']} {dist.world_size()}")
    dist.barrier()
    dist.cleanup()


def test_two_cpu_processes_reduce_with_gloo(tmp_path):
    out = str(tmp_path / "out.txt")
    mp.spawn(_worker, args=(_free_port(), out), nprocs=2, join=True)
    assert open(out).read() == "2 1.5 0 2"


def test_single_process_needs_no_setup(monkeypatch):
    for key in ("RANK", "WORLD_SIZE", "SLURM_NTASKS", "SLURM_PROCID"):
        monkeypatch.delenv(key, raising=False)
    ctx = dist.init_distributed("cpu")
    assert (ctx.rank, ctx.world_size, ctx.is_main, ctx.distributed) == (0, 1, True, False)
    assert dist.all_reduce_mean(torch.tensor([3.0])).item() == 3.0


@pytest.mark.parametrize("env, expected", [
    ({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"}, (3, 4, 1)),
    ({"SLURM_PROCID": "5", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1"}, (5, 8, 1)),
    ({"SLURM_PROCID": "0", "SLURM_NTASKS": "1"}, (0, 1, 0)),
    ({}, (0, 1, 0)),
])
def test_world_from_torchrun_or_slurm_variables(monkeypatch, env, expected):
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK",
                "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert dist.env_world() == expected


def test_slurm_master_address_from_nodelist(monkeypatch):
    monkeypatch.setenv("SLURM_JOB_NODELIST", "gpu[012-015],cpu7")
    assert dist._slurm_master() == "gpu012"
