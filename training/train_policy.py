"""Trains the DP-T-style action denoiser on expert demonstrations of the reach-around task (ε-prediction DDPM-100).

Usage (about 60 min on one core; a fast BLAS matters ~10x — see training/README.md):
  OMP_NUM_THREADS=1 /usr/bin/python3 training/train_policy.py --run training/runs/policy --max-minutes 62
Writes checkpoint.pt (model, EMA, optimiser) and ema-<step>.pt snapshots every --snapshot-minutes.
"""

import argparse
import json
import math
import random
import time
from pathlib import Path

import torch

from policy_model import PolicyDenoiser, Schedule
from policy_task import HORIZON, MAX_STEP, expert_episode, make_episodes

DEMO_SEED = 1  # the evaluation set uses another seed (eval_policy.py)


def demonstrations(episodes: int, margin: float, seed: int):
    """(observation, 16-step normalised action chunk) pairs; each episode's side is a fair coin."""
    coin = random.Random(seed)
    obs_rows, chunk_rows = [], []
    for ep in make_episodes(DEMO_SEED, episodes):
        side = 1 if coin.random() < 0.5 else -1
        obs, acts, status = expert_episode(ep, side, margin)
        assert status == "success", status
        norm = [(ax / MAX_STEP, ay / MAX_STEP) for ax, ay in acts]
        for k in range(len(obs)):
            chunk = norm[k:k + HORIZON]
            chunk = chunk + [(0.0, 0.0)] * (HORIZON - len(chunk))  # past the goal: stay
            obs_rows.append(obs[k])
            chunk_rows.append(chunk)
    return torch.tensor(obs_rows, dtype=torch.float32), torch.tensor(chunk_rows, dtype=torch.float32)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--run", default="training/runs/policy")
    p.add_argument("--episodes", type=int, default=4000)
    p.add_argument("--margin", type=float, default=0.15)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=6e-4)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--ema", type=float, default=0.998)
    p.add_argument("--max-minutes", type=float, default=60.0)
    p.add_argument("--max-steps", type=int, default=10**9)
    p.add_argument("--snapshot-minutes", type=float, default=5.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    run = Path(args.run)
    run.mkdir(parents=True, exist_ok=True)
    obs, chunks = demonstrations(args.episodes, args.margin, args.seed)
    print(f"{len(obs)} pairs from {args.episodes} expert episodes", flush=True)

    sched = Schedule(100)
    sqrt_a = torch.tensor([math.sqrt(a) for a in sched.abar], dtype=torch.float32)
    sqrt_1ma = torch.tensor([math.sqrt(1 - a) for a in sched.abar], dtype=torch.float32)
    model = PolicyDenoiser(args.dim, args.depth, args.heads)
    ema = PolicyDenoiser(args.dim, args.depth, args.heads)
    ema.load_state_dict(model.state_dict())
    ema.requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-3)
    budget = args.max_minutes * 60
    start = time.time()
    last_snapshot = start
    log = []
    step = 0
    running = 0.0
    while True:
        elapsed = time.time() - start
        if elapsed >= budget or step >= args.max_steps:
            break
        # Warm-up, then cosine decay over the wall-clock budget (the step count is not known in advance).
        lr = args.lr * min(1.0, (step + 1) / args.warmup) * 0.5 * (1 + math.cos(math.pi * elapsed / budget))
        for group in opt.param_groups:
            group["lr"] = lr
        idx = torch.randint(0, len(obs), (args.batch,))
        x0, o = chunks[idx], obs[idx]
        t = torch.randint(0, sched.T, (args.batch,))
        eps = torch.randn_like(x0)
        xt = sqrt_a[t][:, None, None] * x0 + sqrt_1ma[t][:, None, None] * eps
        loss = torch.nn.functional.mse_loss(model(xt, t, o), eps)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            for pe, pm in zip(ema.parameters(), model.parameters()):
                pe.mul_(args.ema).add_(pm, alpha=1 - args.ema)
        step += 1
        running = 0.98 * running + 0.02 * loss.item() if step > 1 else loss.item()
        if step % 100 == 0:
            log.append({"step": step, "loss": running, "lr": lr, "elapsed": time.time() - start})
            print(f"step {step} loss {running:.4f} lr {lr:.2e} {time.time() - start:.0f}s", flush=True)
        if time.time() - last_snapshot >= args.snapshot_minutes * 60:
            last_snapshot = time.time()
            save(run, model, ema, opt, args, step, time.time() - start, log, snapshot=True)
    save(run, model, ema, opt, args, step, time.time() - start, log, snapshot=True)
    print(f"done: {step} steps in {(time.time() - start) / 60:.1f} min", flush=True)


def save(run: Path, model, ema, opt, args, step: int, elapsed: float, log: list, snapshot: bool) -> None:
    state = {"model": model.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(), "args": vars(args),
             "step": step, "elapsed": elapsed, "log": log}
    torch.save(state, run / "checkpoint.tmp")
    (run / "checkpoint.tmp").replace(run / "checkpoint.pt")
    if snapshot:
        torch.save({"ema": ema.state_dict(), "args": vars(args), "step": step, "elapsed": elapsed, "log": log},
                   run / f"ema-{step:06d}.pt")
    (run / "log.json").write_text(json.dumps(log))


if __name__ == "__main__":
    main()
