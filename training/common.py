"""Shared helpers for the training recipe: Fashion-MNIST loading, seeding, run-time setup.

Only the recipe in this folder uses Python; Ditto itself never does.
"""

import gzip
import os
import random
import struct
from pathlib import Path

import numpy as np
import torch

DATA_DIR = Path(os.environ.get("FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist"))
CLASS_NAMES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]


def read_idx(path: Path) -> np.ndarray:
    """Reads an IDX file (the MNIST container format), gzipped or not."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        magic = f.read(4)
        ndim = magic[3]
        dims = struct.unpack(">" + "I" * ndim, f.read(4 * ndim))
        return np.frombuffer(f.read(), dtype=np.uint8).reshape(dims)


def load_split(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns (images [N,1,28,28] float32 in [-1, 1], labels [N] int64) for 'train' or 't10k'."""
    if not (DATA_DIR / f"{split}-images-idx3-ubyte.gz").exists():
        raise SystemExit(
            f"Fashion-MNIST not found in {DATA_DIR}: run `apt-get install -y dataset-fashion-mnist` "
            "or set FASHION_MNIST_DIR."
        )
    images = read_idx(DATA_DIR / f"{split}-images-idx3-ubyte.gz")
    labels = read_idx(DATA_DIR / f"{split}-labels-idx1-ubyte.gz")
    x = torch.from_numpy(images.astype(np.float32) / 127.5 - 1.0).unsqueeze(1)
    y = torch.from_numpy(labels.astype(np.int64))
    return x, y


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def setup_threads() -> int:
    """Uses every core; torch built by Debian otherwise starts with one thread here."""
    n = int(os.environ.get("TRAIN_THREADS", os.cpu_count() or 1))
    torch.set_num_threads(n)
    return n
