"""Exports the EMA weights of a training run to ONNX with a Ditto manifest.

Exported the way a user would export their own model (plain torch.onnx.export, opset 17, dynamic batch):
Ditto's engine must cope with the graph as the exporter writes it.

Usage: /usr/bin/python3 training/export_dit.py --run training/runs/fashion-dit --out models/fashion-dit
"""

import argparse
import json
from pathlib import Path

import torch

from common import CLASS_NAMES
from dit import DiT


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--run", default="training/runs/fashion-dit")
    p.add_argument("--out", default="models/fashion-dit")
    p.add_argument("--cfg", type=float, default=3.0, help="recommended guidance scale, written to the manifest")
    p.add_argument("--steps", type=int, default=50, help="recommended Euler steps, written to the manifest")
    p.add_argument("--shift", type=float, default=1.0, help="recommended time shift, written to the manifest")
    args = p.parse_args()

    ckpt = torch.load(Path(args.run) / "checkpoint.pt")
    train_args = ckpt["args"]
    model = DiT(depth=train_args["depth"], dim=train_args["dim"], heads=train_args["heads"])
    model.load_state_dict(ckpt["ema"])
    model.eval()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    example = (torch.randn(2, 1, 28, 28), torch.rand(2), torch.tensor([3, 10]))
    torch.onnx.export(
        model, example, str(out / "model.onnx"), opset_version=17,
        input_names=["x", "t", "y"], output_names=["v"],
        dynamic_axes={"x": {0: "batch"}, "t": {0: "batch"}, "y": {0: "batch"}, "v": {0: "batch"}},
    )

    log = ckpt["log"]
    tail = log[-5:] if log else []
    final_loss = sum(r["loss"] for r in tail) / len(tail) if tail else None
    samples_seen = ckpt["step"] * train_args["batch"]
    manifest = {
        "format": "ditto.model.v1",
        "name": "fashion-dit",
        "description": "Class-conditional DiT (adaLN-Zero) trained with rectified flow on Fashion-MNIST.",
        "onnx": "model.onnx",
        "objective": {
            "kind": "flow-velocity",
            "description": "x_t = (1 - t) * x0 + t * noise; the model predicts v = noise - x0; t = 1 is pure noise.",
            "timeAtNoise": 1.0,
            "timeAtData": 0.0,
        },
        "inputs": {
            "sample": {"name": "x", "shape": ["batch", 1, 28, 28], "dtype": "float32"},
            "timestep": {"name": "t", "shape": ["batch"], "dtype": "float32", "scale": 1.0},
            "condition": {"name": "y", "shape": ["batch"], "dtype": "int64", "kind": "class",
                          "numClasses": 10, "nullClass": 10},
        },
        "output": {"name": "v"},
        "image": {"channels": 1, "height": 28, "width": 28, "range": [-1.0, 1.0]},
        "classNames": CLASS_NAMES,
        "recommended": {"sampler": "euler", "steps": args.steps, "cfgScale": args.cfg, "shift": args.shift},
        "architecture": {"blocks": train_args["depth"], "hidden": train_args["dim"], "heads": train_args["heads"],
                         "mlpRatio": 4, "patch": 4, "tokens": 49},
        "parameters": sum(p.numel() for p in model.parameters()),
        "training": {
            "data": "Fashion-MNIST training split (60,000 images), Zalando Research, MIT licence; "
                    "Debian package dataset-fashion-mnist",
            "command": "LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 /usr/bin/python3 "
                       f"training/train_dit.py --run training/runs/fashion-dit --depth {train_args['depth']} "
                       f"--total-steps {train_args['total_steps']} --max-minutes {train_args['max_minutes']:g} && "
                       "/usr/bin/python3 training/export_dit.py",
            "steps": ckpt["step"],
            "batch": train_args["batch"],
            "samplesSeen": samples_seen,
            "epochs": round(samples_seen / 60000, 2),
            "wallMinutes": round(ckpt["elapsed"] / 60, 1),
            "finalLoss": round(final_loss, 4) if final_loss is not None else None,
            "precision": "bf16 autocast, fp32 weights; exported in fp32 from the EMA weights",
        },
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"exported step {ckpt['step']} to {out}")


if __name__ == "__main__":
    main()
