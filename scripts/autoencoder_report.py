"""The figures of an autoencoder checkpoint (docs/autoencoder.md): encode -> decode
reconstruction error at 1x and 2x the training resolution, and super-resolution by both
methods with the rms difference between the downsampled output and the input.

    python scripts/autoencoder_report.py --ckpt runs/mnist_ae/checkpoint.pt --n 16 --steps 50
"""
import argparse

import torch
import torch.nn.functional as F

from infdiff.data import build_dataset
from infdiff.images import resize
from infdiff.sample import Sampler


def rms(a, b):
    return (a - b).pow(2).mean().sqrt().item()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ckpt", required=True)
    p.add_argument("--n", type=int, default=16, help="test images")
    p.add_argument("--steps", type=int, default=50, help="DDIM steps of inversion and decoding")
    p.add_argument("--superres", type=int, nargs="*", default=[2, 4], help="super-resolution factors")
    args = p.parse_args(argv)
    s = Sampler.from_checkpoint(args.ckpt, "cpu")
    s.require_autoencoder("autoencoder_report")
    import dataclasses

    ds = build_dataset(dataclasses.replace(s.cfg.data, split="test", limit=args.n))
    x = torch.stack([ds[i] for i in range(min(args.n, len(ds)))])
    r = x.shape[-1]
    print(f"{len(x)} test images of {s.cfg.data.name}, {args.steps} DDIM steps")
    for factor in (1, 2):
        big = x if factor == 1 else F.interpolate(x, size=(factor * r,) * 2, mode="bicubic", align_corners=False).clamp(-1, 1)
        z = s.encode(big)
        rec = s.decode(s.invert(big, z, args.steps), z, args.steps)
        print(f"reconstruction {factor}x ({factor * r} px): rms {rms(rec, big):.4f} "
              f"(image rms {big.pow(2).mean().sqrt().item():.4f})")
    for factor in args.superres:
        res = factor * r
        enc = s.superres_encode(x, res, args.steps, s.generator(0))
        sde = s.superres(x, res, steps=args.steps, generator=s.generator(0))
        print(f"superres {r}->{res}: rms(downsampled output - input) encode {rms(resize(enc, (r, r)), x):.4f}, "
              f"sdedit {rms(resize(sde, (r, r)), x):.4f}")


if __name__ == "__main__":
    main()
