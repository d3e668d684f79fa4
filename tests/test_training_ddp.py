"""DistributedDataParallel on CPU: two processes on the gloo backend train in lockstep."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, store: str, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    from sinotriage.training import TrainConfig, train

    cfg = TrainConfig(store=store, out_dir=out, domain="hu", image_size=32,
                      model="densenet_slim", epochs=2, batch_size=4, progress=False,
                      max_train_slices=16, seed=0)
    result = train(cfg)
    flat = torch.cat([p.detach().reshape(-1) for p in result.model.parameters()])
    gathered = [torch.zeros_like(flat) for _ in range(world)]
    dist.all_gather(gathered, flat)
    if rank == 0:
        diff = max(float((g - gathered[0]).abs().max()) for g in gathered)
        Path(out, "ddp.json").write_text(json.dumps({"max_diff": diff,
                                                      "epochs": len(result.history)}))
    dist.destroy_process_group()


@pytest.mark.slow
def test_ddp_two_processes_gloo(tiny_store, tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    mp.spawn(_worker, args=(2, _free_port(), str(tiny_store.path), str(out)), nprocs=2,
             join=True)
    info = json.loads((out / "ddp.json").read_text())
    assert info["epochs"] == 2
    assert info["max_diff"] == 0.0  # DDP keeps the replicas identical
    assert (out / "best.safetensors").is_file() and (out / "metrics.csv").is_file()
