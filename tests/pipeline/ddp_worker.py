"""Run by test_ddp.py under torchrun: trains the tiny config, then rank 0 gathers every rank's
weights and writes whether they are identical."""
import sys

import torch
import torch.distributed as dist

from infdiff.config import load_config
from infdiff.model import build_model
from infdiff.train import Trainer

torch.set_num_threads(1)
config, out_dir, result = sys.argv[1:4]
cfg = load_config(config, {"train.out_dir": out_dir, "train.steps": 4, "train.ckpt_every": 0})
trainer = Trainer(cfg, quiet=True)
trainer.fit()
flat = torch.cat([p.detach().flatten() for p in trainer.model.parameters()])
gathered = [torch.empty_like(flat) for _ in range(trainer.world)]
dist.all_gather(gathered, flat)
if trainer.rank == 0:
    same = all(torch.equal(gathered[0], g) for g in gathered[1:])
    torch.manual_seed(cfg.train.seed)  # what Trainer does before building the model on rank 0
    start = torch.cat([p.detach().flatten() for p in build_model(cfg).parameters()])
    moved = not torch.equal(gathered[0], start)
    with open(result, "w") as fh:
        fh.write(f"world={trainer.world} identical={same} moved={moved}")
dist.barrier()  # destroy together: a rank that tears down alone while another works was seen to abort (SIGABRT)
dist.destroy_process_group()
