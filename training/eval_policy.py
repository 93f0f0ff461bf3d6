"""Closed-loop success of a trained policy on the seeded evaluation episodes (batched over episodes).

Usage: /usr/bin/python3 training/eval_policy.py --ckpt training/runs/policy/checkpoint.pt --episodes 200 \
         --sampler ddpm --steps 100
Each re-plan samples a 16-step chunk from the current observation and executes the first 8 actions.
"""

import argparse
import json
import time

import torch

from policy_model import PolicyDenoiser, Schedule, sample
from policy_task import MAX_STEP, Sim, make_episodes

EVAL_SEED = 7
EXECUTE = 8


def load_ema(path: str) -> PolicyDenoiser:
    ckpt = torch.load(path)
    a = ckpt["args"]
    model = PolicyDenoiser(a["dim"], a["depth"], a["heads"])
    model.load_state_dict(ckpt["ema"])
    model.eval()
    return model


def rollout(model, episodes, sampler: str, steps: int, seed: int):
    torch.manual_seed(seed)
    sched = Schedule(100)
    sims = [Sim(ep) for ep in episodes]
    chunks = 0
    while True:
        live = [s for s in sims if s.status == "running"]
        if not live:
            break
        obs = torch.tensor([s.observation() for s in live], dtype=torch.float32)
        noise = torch.randn(len(live), 16, 2)
        acts = sample(model, obs, sched, steps, sampler, noise)
        chunks += 1
        for s, chunk in zip(live, acts.tolist()):
            for ax, ay in chunk[:EXECUTE]:
                if s.step(ax * MAX_STEP, ay * MAX_STEP) != "running":
                    break
    return sims, chunks


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--ckpt", required=True)
    p.add_argument("--episodes", type=int, default=200)
    p.add_argument("--sampler", choices=["ddpm", "ddim"], default="ddpm")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    model = load_ema(args.ckpt)
    t0 = time.time()
    sims, chunks = rollout(model, make_episodes(EVAL_SEED, args.episodes), args.sampler, args.steps, args.seed)
    n = len(sims)
    counts = {k: sum(s.status == k for s in sims) for k in ("success", "collision", "timeout")}
    out = {"ckpt": args.ckpt, "sampler": args.sampler, "steps": args.steps, "episodes": n,
           **{k: v / n for k, v in counts.items()}, "replans": chunks, "seconds": round(time.time() - t0, 1)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
