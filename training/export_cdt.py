"""Exports a CDT (training/cdt.py) to ONNX graphs with explicit cache states, plus a `ditto.stream.v1` manifest.

Graphs (batch 1, the frame axis dynamic everywhere):
  encoder.onnx        video [1,1,F,H,W], state_in_j...       -> latent [1,L,F',h,w], state_out_j...
  context-first.onnx  latent [1,L,K,h,w], state_in_j...      -> ctx0 [1,C,F,H,W], ctx1 [..H/2..], ctx2 [..H/4..],
  context-next.onnx     (same; "first" drops TimeUpsample's first frame: K latents -> 4K-3 frames, else 4K)
  denoiser.onnx       x [1,1,F,H,W], t [1], ctx0, ctx1, ctx2, state_in_j... -> x0 [1,1,F,H,W], state_out_j...

The slot list in the manifest (call order = state_in_j order) is the contract with src/video/: the driver starts
every slot at `initialFrames` zero frames (the padding) and feeds state_out_j of one chunk into state_in_j of the
next.

    /usr/bin/python3 training/export_cdt.py --checkpoint training/runs/cdt/checkpoint.pt --out models/cdt-moving-fashion
    /usr/bin/python3 training/export_cdt.py --random --out test/fixtures/cdt-random   # tiny random-weight test model
"""

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from cdt import TRAIN_STEPS, Cdt, CdtConfig, Stream
from moving_fashion import moving_fashion

TINY = CdtConfig(canvas=16, latent=2, enc=(4, 4, 6), dec=(6, 4, 4), unet=(4, 4, 6), temb=8)


class EncoderGraph(nn.Module):
    def __init__(self, model: Cdt):
        super().__init__()
        self.model = model

    def forward(self, video, *states):
        s = Stream(list(states))
        mean, _ = self.model.encoder(video, s)
        return (mean, *s.out)


class ContextGraph(nn.Module):
    def __init__(self, model: Cdt):
        super().__init__()
        self.model = model

    def forward(self, latent, *states):
        s = Stream(list(states))
        return (*self.model.context(latent, s), *s.out)


class DenoiserGraph(nn.Module):
    def __init__(self, model: Cdt):
        super().__init__()
        self.model = model

    def forward(self, x, t, c0, c1, c2, *states):
        s = Stream(list(states))
        return (self.model.denoiser(x, t, c0, c1, c2, s), *s.out)


def slot_list(stream: Stream) -> list[dict]:
    return [{"name": sl.name, "kind": sl.kind, "frames": sl.frames, "initialFrames": sl.initial_frames,
             "shape": sl.shape, "pad": "zeros"} for sl in stream.slots]


def initial_states(slots: list[dict]) -> list[torch.Tensor]:
    return [torch.zeros(1, sl["shape"][0], sl["initialFrames"], *sl["shape"][1:]) for sl in slots]


def export(module: nn.Module, args: tuple, names_in: list, names_out: list, dynamic: dict, path: Path) -> None:
    torch.onnx.export(module, args, str(path), input_names=names_in, output_names=names_out,
                      dynamic_axes=dynamic, opset_version=17, do_constant_folding=True)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@torch.no_grad()
def export_all(model: Cdt, out: Path, name: str, description: str, training: dict | None) -> dict:
    cfg = model.cfg
    out.mkdir(parents=True, exist_ok=True)
    h = cfg.canvas
    frames = 9
    video = torch.zeros(1, 1, frames, h, h)
    enc_probe = Stream()
    latent, _ = model.encoder(video, enc_probe)
    enc_slots = slot_list(enc_probe)
    model.context.set_first(True)
    ctx_probe = Stream()
    ctx = model.context(latent, ctx_probe)
    ctx_slots = slot_list(ctx_probe)
    den_probe = Stream()
    t = torch.tensor([(TRAIN_STEPS - 1) / TRAIN_STEPS])
    model.denoiser(video, t, *ctx, den_probe)
    den_slots = slot_list(den_probe)

    def state_names(slots):
        ins = [f"state_in_{j}" for j in range(len(slots))]
        outs = [f"state_out_{j}" for j in range(len(slots))]
        dyn = {n: {2: f"state_frames_{j}"} for j, n in enumerate(ins)}
        return ins, outs, dyn

    ins, outs, dyn = state_names(enc_slots)
    export(EncoderGraph(model), (video, *initial_states(enc_slots)), ["video", *ins], ["latent", *outs],
           {"video": {2: "frames"}, "latent": {2: "latent_frames"}, **dyn}, out / "encoder.onnx")
    ins, outs, dyn = state_names(ctx_slots)
    ctx_names = ["ctx0", "ctx1", "ctx2"]
    ctx_dyn = {n: {2: "frames"} for n in ctx_names}
    for first in (True, False):
        model.context.set_first(first)
        export(ContextGraph(model), (latent, *initial_states(ctx_slots)), ["latent", *ins], [*ctx_names, *outs],
               {"latent": {2: "latent_frames"}, **ctx_dyn, **dyn},
               out / f"context-{'first' if first else 'next'}.onnx")
    model.context.set_first(True)
    ins, outs, dyn = state_names(den_slots)
    export(DenoiserGraph(model), (video, t, *ctx, *initial_states(den_slots)), ["x", "t", *ctx_names, *ins],
           ["x0", *outs], {"x": {2: "frames"}, "x0": {2: "frames"}, **ctx_dyn, **dyn}, out / "denoiser.onnx")

    files = ["encoder.onnx", "context-first.onnx", "context-next.onnx", "denoiser.onnx"]
    manifest = {
        "format": "ditto.stream.v1",
        "name": name,
        "description": description,
        "paper": "CDT, arXiv 2503.03708",
        "video": {"channels": 1, "height": h, "width": h, "range": [-1, 1]},
        "layout": "1+4k",
        "latent": {"channels": cfg.latent, "time": 4, "space": 4},
        "networks": {
            "encoder": {"graphs": {"first": "encoder.onnx", "next": "encoder.onnx"}, "slots": enc_slots},
            "context": {"graphs": {"first": "context-first.onnx", "next": "context-next.onnx"},
                        "slots": ctx_slots, "contexts": [list(c.shape[1:2]) + list(c.shape[3:]) for c in ctx]},
            "denoiser": {"graphs": {"first": "denoiser.onnx", "next": "denoiser.onnx"}, "slots": den_slots},
        },
        "chunk": {"frames": 8, "latentFrames": 2},
        "sampler": {"steps": 1, "gamma": 0.8, "schedule": "cosine", "trainSteps": TRAIN_STEPS,
                    "prediction": "x0"},
        "config": cfg.to_json(),
        "sha256": {f: sha256(out / f) for f in files},
    }
    if training:
        manifest["training"] = training
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


@torch.no_grad()
def write_reference(model: Cdt, out: Path, bank: np.ndarray) -> None:
    """What PyTorch computes for a generator video, so the TypeScript side can check the ONNX graphs against it:
    the latent mean and the single-step x0 with x_init = 0 (no noise needed to agree across languages)."""
    h = model.cfg.canvas
    video_u8 = moving_fashion(bank, 3, 9, canvas=h, objects=1)
    x = torch.from_numpy(video_u8.astype(np.float32) / 127.5 - 1.0)[None, None]
    latent, _ = model.encoder(x, Stream())
    model.context.set_first(True)
    ctx = model.context(latent, Stream())
    t = torch.tensor([(TRAIN_STEPS - 1) / TRAIN_STEPS])
    x0 = model.denoiser(torch.zeros_like(x), t, *ctx, Stream())
    ref = {"seed": 3, "frames": 9, "objects": 1, "latent": [round(float(v), 6) for v in latent.flatten()],
           "x0": [round(float(v), 6) for v in x0.flatten()]}
    (out / "reference.json").write_text(json.dumps(ref) + "\n")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--checkpoint", default="training/runs/cdt/checkpoint.pt")
    p.add_argument("--out", default="models/cdt-moving-fashion")
    p.add_argument("--random", action="store_true", help="tiny random-weight model (test fixture)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    out = Path(args.out)
    if args.random:
        torch.manual_seed(args.seed)
        model = Cdt(TINY).eval()
        export_all(model, out, "cdt-random", "Tiny random-weight CDT (test fixture for chunked-vs-whole checks).",
                   None)
        bank = np.fromfile(Path(__file__).resolve().parent.parent
                           / "models/fashion-classifier/test-subset-images.idx", dtype=np.uint8, offset=16)
        write_reference(model, out, bank.reshape(-1, 28, 28))
        return
    ck = torch.load(args.checkpoint)
    cfg = CdtConfig(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in ck["config"].items()})
    model = Cdt(cfg)
    model.load_state_dict(ck["ema"])
    model.eval()
    training = {"steps": ck["step"], "minutes": round(ck["elapsed"] / 60, 1), "args": ck["args"],
                "data": "Moving Fashion-MNIST (training/moving_fashion.py), train split garments, 9-frame clips"}
    export_all(model, out, "cdt-moving-fashion",
               "Small CDT video tokenizer (time x4, space x4, 8 latent channels) on 32x32 Moving Fashion-MNIST.",
               training)


if __name__ == "__main__":
    main()
