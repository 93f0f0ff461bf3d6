"""Trains the small CDT (training/cdt.py) on Moving Fashion-MNIST clips; time-bounded and resumable.

Objective (spec: Diffusion decoder): the denoiser predicts x0 from x_t = sqrt(a_t) x0 + sqrt(1 - a_t) eps given the
context of the encoder's KL-regularised latent; loss = MSE(x0_hat, x0) + kl_weight * KL. Half the batch is drawn at
t = N - 1 with the sampler's start x_init = gamma * eps (gamma ~ U[0.8, 1]), so single-step decoding (the default)
is what the model learns best; the other half at uniform t keeps multi-step DDIM meaningful.

    nice -n 10 /usr/bin/python3 training/train_cdt.py --run training/runs/cdt --max-minutes 80
"""

import argparse
import copy
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from cdt import TRAIN_STEPS, Cdt, CdtConfig, Stream, alphas_cumprod
from common import DATA_DIR, read_idx
from moving_fashion import moving_fashion

HELD_OUT_BANK = Path(__file__).resolve().parent.parent / "models/fashion-classifier/test-subset-images.idx"
EVAL_SEED0 = 1_000_000  # held-out videos: seeds 1e6.. on the held-out garments (never seen in training)


def videos(bank: np.ndarray, seeds, frames: int) -> torch.Tensor:
    """[B, 1, frames, 32, 32] float32 in [-1, 1]."""
    v = np.stack([moving_fashion(bank, int(s), frames) for s in seeds])
    return torch.from_numpy(v.astype(np.float32) / 127.5 - 1.0).unsqueeze(1)


def forward_loss(model: Cdt, x: torch.Tensor, acp: torch.Tensor, kl_weight: float):
    mean, logvar = model.encoder(x, Stream())
    logvar = logvar.clamp(-20, 10)
    z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)
    kl = 0.5 * (mean.pow(2) + logvar.exp() - 1 - logvar).mean()
    model.context.set_first(True)
    ctx = model.context(z, Stream())
    b = x.shape[0]
    half = b // 2
    t = torch.cat([torch.full((half,), TRAIN_STEPS - 1), torch.randint(0, TRAIN_STEPS, (b - half,))])
    a = acp[t].float()[:, None, None, None, None]
    eps = torch.randn_like(x)
    noise_scale = torch.sqrt(1 - a)
    noise_scale[:half] = 0.8 + 0.2 * torch.rand(half)[:, None, None, None, None]
    xt = a.sqrt() * x + noise_scale * eps
    x0 = model.denoiser(xt, t.float() / TRAIN_STEPS, *ctx, Stream())
    mse = (x0 - x).pow(2).mean(dim=(1, 2, 3, 4))
    return mse.mean() + kl_weight * kl, mse[:half].mean().item(), kl.item()


@torch.no_grad()
def eval_psnr(model: Cdt, x: torch.Tensor, gamma: float = 0.8) -> float:
    """Single-step reconstruction PSNR (dB, images in [0, 1]) of whole clips with the latent mean."""
    model.eval()
    mean, _ = model.encoder(x, Stream())
    model.context.set_first(True)
    ctx = model.context(mean, Stream())
    g = torch.Generator().manual_seed(0)
    xt = gamma * torch.randn(x.shape, generator=g)
    t = torch.full((x.shape[0],), (TRAIN_STEPS - 1) / TRAIN_STEPS)
    x0 = model.denoiser(xt, t, *ctx, Stream()).clamp(-1, 1)
    model.train()
    mse = ((x0 - x) / 2).pow(2).mean(dim=(1, 2, 3, 4))
    return (10 * torch.log10(1 / mse)).mean().item()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--run", default="training/runs/cdt")
    p.add_argument("--max-minutes", type=float, default=80)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--frames", type=int, default=9, help="clip length, 1 + 4k")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--kl-weight", type=float, default=1e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--bench-steps", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    run = Path(args.run)
    run.mkdir(parents=True, exist_ok=True)
    ckpt_path = run / "checkpoint.pt"

    cfg = CdtConfig()
    torch.manual_seed(args.seed)
    model = Cdt(cfg)
    ema = copy.deepcopy(model).eval()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    step, elapsed = 0, 0.0
    if ckpt_path.exists():
        ck = torch.load(ckpt_path)
        model.load_state_dict(ck["model"])
        ema.load_state_dict(ck["ema"])
        opt.load_state_dict(ck["opt"])
        step, elapsed = ck["step"], ck["elapsed"]
        torch.set_rng_state(ck["rng"])
        print(f"resumed at step {step} ({elapsed / 60:.1f} min)")

    train_bank = read_idx(DATA_DIR / "train-images-idx3-ubyte.gz")
    eval_bank = read_idx(HELD_OUT_BANK)
    x_eval = videos(eval_bank, range(EVAL_SEED0, EVAL_SEED0 + 8), 17)
    acp = alphas_cumprod()
    budget = args.max_minutes * 60
    log = open(run / "log.txt", "a")

    def save() -> None:
        torch.save({"model": model.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(), "step": step,
                    "elapsed": elapsed, "rng": torch.get_rng_state(), "config": cfg.to_json(),
                    "args": vars(args)}, ckpt_path)

    window = []
    last_save = time.time()
    while elapsed < budget:
        t0 = time.time()
        frac = min(1.0, elapsed / budget)
        lr = args.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * frac)))  # cosine over the time budget
        for g in opt.param_groups:
            g["lr"] = lr
        seeds = range(step * args.batch, (step + 1) * args.batch)
        x = videos(train_bank, seeds, args.frames)
        loss, mse1, kl = forward_loss(model, x, acp, args.kl_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        decay = min(0.999, (1 + step) / (10 + step))
        with torch.no_grad():
            for pe, pm in zip(ema.parameters(), model.parameters()):
                pe.lerp_(pm, 1 - decay)
        step += 1
        elapsed += time.time() - t0
        window.append((loss.item(), mse1, kl))
        if args.bench_steps and step >= args.bench_steps:
            print(f"{elapsed / step:.3f} s/step")
            return
        if step % 50 == 0:
            m = np.mean(window, axis=0)
            window = []
            line = {"step": step, "min": round(elapsed / 60, 2), "lr": round(lr, 6), "loss": round(m[0], 5),
                    "mse_1step_train": round(m[1], 5), "kl": round(m[2], 3)}
            if step % 250 == 0:
                line["psnr_1step_heldout_ema"] = round(eval_psnr(ema, x_eval), 2)
            print(json.dumps(line), file=log, flush=True)
        if time.time() - last_save > 300:
            save()
            last_save = time.time()
    save()
    print(json.dumps({"done": step, "psnr_1step_heldout_ema": round(eval_psnr(ema, x_eval), 2)}), file=log, flush=True)


if __name__ == "__main__":
    main()
