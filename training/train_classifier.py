"""Trains the evaluation classifier (a small CNN) on Fashion-MNIST and exports what Ditto's metrics need.

Writes to models/fashion-classifier/:
  classifier.onnx              inputs `image` [B,1,28,28] in [-1, 1]; outputs `logits` [B,10], `features` [B,128]
  test-stats.json              mean and covariance of `features` over the 10,000 test images (Frechet reference)
  test-subset-{images,labels}.idx  1,000 test images with labels (IDX format, uint8) for metric tests
  manifest.json

Usage: /usr/bin/python3 training/train_classifier.py [--epochs 8] [--out models/fashion-classifier]
"""

import argparse
import json
import struct
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from common import CLASS_NAMES, load_split, seed_everything, setup_threads

FEATURE_DIM = 128


class FashionCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
            nn.Conv2d(64, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(64 * 7 * 7, FEATURE_DIM), nn.ReLU())
        self.dropout = nn.Dropout(0.3)
        self.out = nn.Linear(FEATURE_DIM, 10)

    def forward(self, image: torch.Tensor):
        features = self.fc(self.conv(image))  # [B, 128] penultimate features
        return self.out(self.dropout(features)), features


def augment(x: torch.Tensor) -> torch.Tensor:
    """Random horizontal flip and a shift of up to 2 pixels."""
    flip = torch.rand(x.shape[0]) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    padded = F.pad(x, (2, 2, 2, 2), value=-1.0)
    dx, dy = np.random.randint(0, 5, size=2)
    return padded[:, :, dy:dy + 28, dx:dx + 28]


@torch.no_grad()
def features_and_accuracy(model: FashionCNN, x: torch.Tensor, y: torch.Tensor):
    model.eval()
    feats, correct = [], 0
    for i in range(0, len(x), 500):
        logits, f = model(x[i:i + 500])
        feats.append(f)
        correct += (logits.argmax(1) == y[i:i + 500]).sum().item()
    return torch.cat(feats).double(), correct / len(x)


def write_idx(path: Path, array: np.ndarray) -> None:
    """IDX format: magic (0, 0, 0x08 = uint8, ndim), big-endian dims, then the bytes."""
    with open(path, "wb") as f:
        f.write(bytes([0, 0, 0x08, array.ndim]))
        f.write(struct.pack(">" + "I" * array.ndim, *array.shape))
        f.write(array.astype(np.uint8).tobytes())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--out", default="models/fashion-classifier")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    threads = setup_threads()
    seed_everything(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    x_train, y_train = load_split("train")
    x_test, y_test = load_split("t10k")
    model = FashionCNN()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    steps_per_epoch = len(x_train) // 128
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=args.epochs * steps_per_epoch)
    start = time.time()
    for epoch in range(args.epochs):
        model.train()
        perm = torch.randperm(len(x_train))
        total = 0.0
        for i in range(steps_per_epoch):
            idx = perm[i * 128:(i + 1) * 128]
            logits, _ = model(augment(x_train[idx]))
            loss = F.cross_entropy(logits, y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item()
        _, acc = features_and_accuracy(model, x_test, y_test)
        print(f"epoch {epoch + 1}: loss {total / steps_per_epoch:.4f} test accuracy {acc:.4f} "
              f"({time.time() - start:.0f} s)", flush=True)

    feats, test_acc = features_and_accuracy(model, x_test, y_test)
    mean = feats.mean(0)
    centered = feats - mean
    cov = centered.T @ centered / (len(feats) - 1)
    (out / "test-stats.json").write_text(json.dumps({
        "description": "Mean and covariance (unbiased) of the classifier's `features` output over the 10,000 "
                       "Fashion-MNIST test images, the reference for Frechet distance.",
        "count": len(feats), "dim": FEATURE_DIM,
        "mean": [round(v, 7) for v in mean.tolist()],
        "cov": [[round(v, 7) for v in row] for row in cov.tolist()],
    }))

    # 1,000 test images, 100 per class, the first of each class in file order.
    chosen = np.concatenate([np.nonzero(y_test.numpy() == k)[0][:100] for k in range(10)])
    chosen.sort()
    raw = ((x_test[chosen, 0].numpy() + 1.0) * 127.5).round()
    write_idx(out / "test-subset-images.idx", raw)
    write_idx(out / "test-subset-labels.idx", y_test[chosen].numpy())

    model.eval()
    torch.onnx.export(
        model, (torch.zeros(1, 1, 28, 28),), str(out / "classifier.onnx"), opset_version=17,
        input_names=["image"], output_names=["logits", "features"],
        dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}, "features": {0: "batch"}},
    )
    (out / "manifest.json").write_text(json.dumps({
        "name": "fashion-classifier",
        "description": "Evaluation classifier for Ditto's distribution metrics (accuracy, Frechet distance).",
        "onnx": "classifier.onnx",
        "inputs": {"image": {"shape": ["batch", 1, 28, 28], "dtype": "float32", "range": [-1, 1]}},
        "outputs": {"logits": {"shape": ["batch", 10]}, "features": {"shape": ["batch", FEATURE_DIM]}},
        "classNames": CLASS_NAMES,
        "testAccuracy": round(test_acc, 4),
        "testStats": "test-stats.json",
        "testSubset": {"images": "test-subset-images.idx", "labels": "test-subset-labels.idx", "count": len(chosen)},
        "parameters": sum(p.numel() for p in model.parameters()),
        "trainingData": "Fashion-MNIST training split (60,000 images), Zalando Research, MIT licence; "
                        "Debian package dataset-fashion-mnist",
        "trainingCommand": f"/usr/bin/python3 training/train_classifier.py --epochs {args.epochs} --seed {args.seed}",
        "trainingWallSeconds": round(time.time() - start),
        "threads": threads,
    }, indent=2) + "\n")
    print(f"test accuracy {test_acc:.4f}; wrote {out}")


if __name__ == "__main__":
    main()
