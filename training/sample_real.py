"""Writes N real Fashion-MNIST training images (IDX, uint8) for the quality report's real-image FD reference.

Usage: /usr/bin/python3 training/sample_real.py --out /tmp/train-1000.idx [--count 1000] [--seed 0]
"""

import argparse
from pathlib import Path

import numpy as np

from common import DATA_DIR, read_idx
from train_classifier import write_idx


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--out", default="/tmp/train-1000.idx")
    p.add_argument("--count", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    images = read_idx(DATA_DIR / "train-images-idx3-ubyte.gz")
    chosen = np.random.default_rng(args.seed).choice(len(images), size=args.count, replace=False)
    write_idx(Path(args.out), images[np.sort(chosen)])
    print(f"wrote {args.count} training images to {args.out}")


if __name__ == "__main__":
    main()
