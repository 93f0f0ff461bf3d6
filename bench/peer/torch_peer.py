"""PyTorch eager peer for `npm run bench:peer`: the shipped DiT in training/dit.py's model definition, with weights
read from the ONNX initializers that Ditto runs, sampling the same way Ditto does (flow Euler, batched CFG) and, for
FORA, caching each block's two branch outputs before their gates on full steps and adding them with the current
step's gates in between (FORA, arXiv 2407.01425; the same rule as Ditto's `fora` policy).

A line-oriented worker: one JSON request per stdin line, one JSON reply per stdout line. Tensors travel as raw
little-endian float32/int64 files named in the requests.
"""

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "training"))
from dit import DiT, modulate  # noqa: E402


def module_key(node_name: str) -> str:
    """'/blocks.0/mlp/mlp.0/MatMul' -> 'blocks.0.mlp.0' (torch.onnx scopes repeat the parent in 'mlp.0')."""
    parts = [p for p in node_name.split("/") if p][:-1]
    path = []
    for p in parts:
        if path and p.startswith(path[-1] + "."):
            path[-1] = p
        else:
            path.append(p)
    return ".".join(path)


def load_model(weights_dir: str, arch: dict) -> DiT:
    index = json.loads((Path(weights_dir) / "weights.json").read_text())
    blob = (Path(weights_dir) / "weights.bin").read_bytes()
    model = DiT(depth=arch["blocks"], dim=arch["hidden"], heads=arch["heads"], mlp_ratio=arch["mlpRatio"])
    expected = model.state_dict()
    state = {}
    for entry in index:
        data = np.frombuffer(blob, dtype="<f4", count=int(np.prod(entry["dims"])), offset=entry["offset"])
        tensor = torch.from_numpy(data.copy()).reshape(entry["dims"])
        name = entry["name"]
        if name in expected:
            state[name] = tensor
        elif entry.get("consumer", {}).get("op") == "MatMul":
            # torch.onnx stores Linear weights transposed, [in, out], under generated names.
            state[module_key(entry["consumer"]["node"]) + ".weight"] = tensor.t().contiguous()
    for key, value in expected.items():
        if key not in state:
            raise SystemExit(f"bench:peer: no ONNX initializer maps to {key}")
        if tuple(state[key].shape) != tuple(value.shape):
            raise SystemExit(f"bench:peer: {key} is {tuple(state[key].shape)} in ONNX, {tuple(value.shape)} in torch")
    model.load_state_dict(state, strict=True)
    return model.eval()


def read(path: str, dtype: str, shape) -> torch.Tensor:
    return torch.from_numpy(np.fromfile(path, dtype=dtype).reshape(shape).copy())


def block_full(block, x, c, cache):
    """One DiT block (training/dit.py's forward), keeping both branch outputs before their gates."""
    shift1, scale1, gate1, shift2, scale2, gate2 = block.adaLN_modulation(c).chunk(6, dim=1)
    attn = block.attn(modulate(block.norm1(x), shift1, scale1))
    x = x + gate1.unsqueeze(1) * attn
    mlp = block.mlp(modulate(block.norm2(x), shift2, scale2))
    cache.append((attn, mlp))
    return x + gate2.unsqueeze(1) * mlp


def block_reuse(block, x, c, cached):
    """FORA between full steps: the cached branch outputs with this step's gates."""
    _, _, gate1, _, _, gate2 = block.adaLN_modulation(c).chunk(6, dim=1)
    attn, mlp = cached
    x = x + gate1.unsqueeze(1) * attn
    return x + gate2.unsqueeze(1) * mlp


def forward(model, x, t, y, plan=None, cache=None):
    """DiT.forward; with plan='full' it refills `cache`, with plan='reuse' it reads it."""
    h = model.x_embedder(x).flatten(2).transpose(1, 2) + model.pos_embed
    c = model.t_embedder(t) + model.y_embedder(y)
    if plan == "reuse":
        for block, cached in zip(model.blocks, cache):
            h = block_reuse(block, h, c, cached)
    elif plan == "full":
        cache.clear()
        for block in model.blocks:
            h = block_full(block, h, c, cache)
    else:
        for block in model.blocks:
            h = block(h, c)
    return model.unpatchify(model.final_layer(h, c))


def is_full_step(step: int, interval: int, warmup: int = 1) -> bool:
    w = max(1, warmup)
    return step < w or (step - (w - 1)) % interval == 0


@torch.no_grad()
def generate(model, req):
    n, shape = req["samples"], req["dims"]
    noise = read(req["noise"], "<f4", shape)
    classes = torch.tensor(req["classes"], dtype=torch.int64)
    times = req["times"]
    cfg, interval = req["cfg"], req.get("interval", 0)
    start = time.perf_counter()
    x = noise
    y = torch.cat([classes, torch.full_like(classes, req["nullClass"])])
    cache = []
    for step in range(len(times) - 1):
        t = torch.full((2 * n,), times[step], dtype=torch.float32)
        plan = None if interval == 0 else ("full" if is_full_step(step, interval) else "reuse")
        v = forward(model, torch.cat([x, x]), t, y, plan, cache)
        cond, uncond = v.chunk(2)
        guided = uncond + cfg * (cond - uncond)
        x = x + (times[step + 1] - times[step]) * guided
    ms = (time.perf_counter() - start) * 1000
    if req.get("out"):
        x.numpy().astype("<f4").tofile(req["out"])
    return {"ms": ms}


def main() -> None:
    model = None
    for line in sys.stdin:
        req = json.loads(line)
        cmd = req["cmd"]
        if cmd == "load":
            torch.set_num_threads(req["threads"])
            torch.set_num_interop_threads(1)
            model = load_model(req["weights"], req["arch"])
            torch.ones(64, 64) @ torch.ones(64, 64)  # loads the BLAS library, to name it below
            maps = Path("/proc/self/maps").read_text() if Path("/proc/self/maps").exists() else ""
            blas = sorted({line.split()[-1] for line in maps.splitlines() if "blas" in line.split()[-1]})
            reply = {"torch": torch.__version__, "threads": torch.get_num_threads(), "blas": blas}
        elif cmd == "forward":
            with torch.no_grad():
                b = req["batch"]
                x = read(req["x"], "<f4", [b, *req["image"]])
                t = read(req["t"], "<f4", [b])
                y = read(req["y"], "<i8", [b])
                forward(model, x, t, y).numpy().astype("<f4").tofile(req["out"])
            reply = {"ok": True}
        elif cmd == "generate":
            reply = generate(model, req)
        elif cmd == "quit":
            break
        else:
            reply = {"error": f"unknown command {cmd}"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
