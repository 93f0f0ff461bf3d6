"""Trains the default Ditto model: a class-conditional DiT on Fashion-MNIST with rectified flow.

x_t = (1 - t) x0 + t eps, the model predicts v = eps - x0, t ~ logit-normal(0, 1); labels dropped to the null
class 10 % of the time for classifier-free guidance. bf16 autocast on the CPU, AdamW, EMA with a warmed-up decay.
Resumable: rerun the same command and it continues from `<run>/checkpoint.pt`.

Usage: LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 \
       /usr/bin/python3 training/train_dit.py --run training/runs/fashion-dit --total-steps 40000
"""

import argparse
import copy
import json
import math
import time
from pathlib import Path

import torch
from PIL import Image

from common import load_split, seed_everything, setup_threads
from dit import DiT, sample_euler


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser()
    p.add_argument("--run", default="training/runs/fashion-dit", help="folder for checkpoint, log and previews")
    p.add_argument("--depth", type=int, default=12)
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--total-steps", type=int, default=40000, help="cosine decay horizon and stopping point")
    p.add_argument("--max-minutes", type=float, default=120.0, help="stop (and checkpoint) after this much training")
    p.add_argument("--label-dropout", type=float, default=0.1)
    p.add_argument("--ema", type=float, default=0.9995)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint-every", type=float, default=5.0, help="minutes")
    p.add_argument("--preview-every", type=float, default=15.0, help="minutes")
    p.add_argument("--bench-steps", type=int, default=0, help="only measure throughput for this many steps")
    return p.parse_args()


def learning_rate(args: argparse.Namespace, step: int) -> float:
    """Linear warm-up, then cosine decay to 10 % of the peak at --total-steps."""
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    frac = min(1.0, (step - args.warmup) / max(1, args.total_steps - args.warmup))
    return args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))


@torch.no_grad()
def update_ema(ema: DiT, model: DiT, step: int, max_decay: float) -> None:
    # A fixed 0.9995 decay would still hold the initial weights after a few thousand steps: warm it up.
    decay = min(max_decay, (1 + step) / (10 + step))
    for e, m in zip(ema.parameters(), model.parameters()):
        e.mul_(decay).add_(m.detach(), alpha=1 - decay)


def save_preview(ema: DiT, path: Path) -> None:
    """10 classes x 8 seeds at 32 Euler steps, CFG 3: a quick look at progress."""
    g = torch.Generator().manual_seed(1234)
    y = torch.arange(10).repeat_interleave(8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        x = sample_euler(ema, y, steps=32, cfg=3.0, generator=g).float()
    grid = x.reshape(10, 8, 28, 28).permute(0, 2, 1, 3).reshape(280, 224)
    Image.fromarray(((grid + 1) * 127.5).round().byte().numpy(), mode="L").save(path)


def main() -> None:
    args = parse_args()
    threads = setup_threads()
    run = Path(args.run)
    run.mkdir(parents=True, exist_ok=True)
    seed_everything(args.seed)
    x_train, y_train = load_split("train")

    model = DiT(depth=args.depth, dim=args.dim, heads=args.heads)
    ema = copy.deepcopy(model).requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    step, elapsed, log = 0, 0.0, []
    ckpt_path = run / "checkpoint.pt"
    if ckpt_path.exists():
        ckpt = torch.load(ckpt_path)
        model.load_state_dict(ckpt["model"])
        ema.load_state_dict(ckpt["ema"])
        opt.load_state_dict(ckpt["opt"])
        step, elapsed, log = ckpt["step"], ckpt["elapsed"], ckpt["log"]
        torch.set_rng_state(ckpt["rng"])
        print(f"resumed at step {step} ({elapsed / 60:.1f} min trained)", flush=True)

    def checkpoint() -> None:
        torch.save({"model": model.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(), "step": step,
                    "elapsed": elapsed, "log": log, "rng": torch.get_rng_state(), "args": vars(args)},
                   run / "checkpoint.tmp")
        (run / "checkpoint.tmp").replace(ckpt_path)
        (run / "log.json").write_text(json.dumps({"args": vars(args), "threads": threads, "log": log}, indent=1))

    n_params = sum(p.numel() for p in model.parameters())
    print(f"DiT depth {args.depth} width {args.dim}: {n_params / 1e6:.2f} M parameters, {threads} threads", flush=True)
    last_ckpt = last_preview = elapsed
    window_loss, window_start, window_steps = 0.0, time.time(), 0
    model.train()
    while step < args.total_steps and elapsed < args.max_minutes * 60:
        t0 = time.time()
        idx = torch.randint(0, len(x_train), (args.batch,))
        x0 = x_train[idx]
        x0 = torch.where(torch.rand(args.batch, 1, 1, 1) < 0.5, x0.flip(3), x0)  # horizontal flip
        y = torch.where(torch.rand(args.batch) < args.label_dropout, torch.full_like(y_train[idx], 10), y_train[idx])
        t = torch.sigmoid(torch.randn(args.batch))  # logit-normal
        eps = torch.randn_like(x0)
        xt = (1 - t[:, None, None, None]) * x0 + t[:, None, None, None] * eps
        for group in opt.param_groups:
            group["lr"] = learning_rate(args, step)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            v = model(xt, t, y)
        loss = torch.mean((v.float() - (eps - x0)) ** 2)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        update_ema(ema, model, step, args.ema)
        step += 1
        elapsed += time.time() - t0
        window_loss += loss.item()
        window_steps += 1

        if args.bench_steps and step >= args.bench_steps:
            rate = window_steps * args.batch / (time.time() - window_start)
            print(f"throughput: {rate:.1f} samples/s over {window_steps} steps", flush=True)
            return
        if step % 100 == 0:
            rate = window_steps * args.batch / (time.time() - window_start)
            log.append({"step": step, "minutes": round(elapsed / 60, 2), "loss": round(window_loss / window_steps, 5),
                        "samplesPerSecond": round(rate, 1)})
            print(json.dumps(log[-1]), flush=True)
            window_loss, window_start, window_steps = 0.0, time.time(), 0
        if elapsed - last_ckpt > args.checkpoint_every * 60:
            checkpoint()
            last_ckpt = elapsed
        if elapsed - last_preview > args.preview_every * 60:
            save_preview(ema, run / f"preview-{step:06d}.png")
            last_preview = elapsed
    checkpoint()
    save_preview(ema, run / f"preview-{step:06d}.png")
    print(f"done at step {step}, {elapsed / 60:.1f} min", flush=True)


if __name__ == "__main__":
    main()
