"""Exports the EMA weights of a policy run to ONNX with a Ditto manifest, plus the parity fixtures the TypeScript
tests check against (sampler outputs with recorded noise; simulator trajectories).

Usage: /usr/bin/python3 training/export_policy.py --ckpt training/runs/policy/checkpoint.pt --out models/reach-policy
"""

import argparse
import base64
import json
import math
from pathlib import Path

import torch

from eval_policy import EVAL_SEED, load_ema
from policy_model import ScheduledDenoiser, Schedule, sample
from policy_task import (GOAL_TOLERANCE, HORIZON, MAX_STEP, MAX_STEPS, OBS_DIM, Sim, expert_action,
                         make_episodes)

EXECUTE = 8


def b64(t: torch.Tensor) -> str:
    return base64.b64encode(t.detach().contiguous().to(torch.float32).numpy().tobytes()).decode()


def sampler_fixture(model) -> dict:
    """Two observations, fixed initial noise; DDIM-20 and DDPM-100 (with recorded per-step noise) outputs."""
    g = torch.Generator().manual_seed(123)
    sims = [Sim(ep) for ep in make_episodes(EVAL_SEED, 2)]
    obs = torch.tensor([s.observation() for s in sims], dtype=torch.float32)
    noise = torch.randn(2, HORIZON, 2, generator=g)
    step_noise = torch.randn(100, 2, HORIZON, 2, generator=g)
    sched = Schedule(100)
    ddim = sample(model, obs, sched, 20, "ddim", noise)
    ddpm = sample(model, obs, sched, 100, "ddpm", noise, step_noise=lambda i: step_noise[i])
    t = torch.tensor([99, 40], dtype=torch.long)
    eps = model(noise, t, obs)
    # Per-unit schedules, desynchronised on purpose (unit u refreshes every 2 + u % 5 steps, offset u % 3), run the
    # way BAC's runtime runs them: the reference for the engine's table executor.
    scheduled = {}
    for kind, steps in (("ddim", 20), ("ddpm", 100)):
        table = [[1 if s == 0 or (s + u % 3) % (2 + u % 5) == 0 else 0 for u in range(12)] for s in range(steps)]
        out = sample(ScheduledDenoiser(model, table), obs, sched, steps, kind, noise,
                     step_noise=lambda i: step_noise[i])
        scheduled[f"{kind}{steps}"] = {"table": table, "x": b64(out)}
    return {"obs": b64(obs), "noise": b64(noise), "stepNoise": b64(step_noise), "ddim20": b64(ddim),
            "ddpm100": b64(ddpm), "epsAt": {"t": [99, 40], "eps": b64(eps)}, "scheduled": scheduled,
            "note": "float32 little-endian, base64; stepNoise[i] is the ancestral noise added at DDPM step i; "
                    "scheduled: per-unit tables m[s][u] (units: attn, xattn, mlp per block) and the sampler's output "
                    "under them"}


def trajectory_fixture() -> dict:
    """Episodes of two seeds and action sequences ending in success, collision and time-out, with every position."""
    out = {"episodeSets": [], "trajectories": []}
    for seed in (EVAL_SEED, 2026):
        out["episodeSets"].append({"seed": seed, "episodes": make_episodes(seed, 5)})
    eps = make_episodes(EVAL_SEED, 5)
    kinds = [("expert+", eps[0]), ("expert-", eps[1]), ("straight", eps[2]), ("zigzag", eps[3])]
    for kind, ep in kinds:
        sim = Sim(ep)
        actions, positions = [], []
        k = 0
        while sim.status == "running":
            if kind.startswith("expert"):
                a = expert_action(sim, 1 if kind == "expert+" else -1, 0.02)
            elif kind == "straight":
                a = (0.07, 0.0)  # over-long: clipped to 0.05; runs into the obstacle
            else:
                a = (0.013 * math.sin(k * 0.7), 0.06 * math.cos(k * 1.3))  # never arrives: time-out
            actions.append(list(a))
            sim.step(*a)
            positions.append(list(sim.p))
            k += 1
        out["trajectories"].append({"kind": kind, "episode": ep, "actions": actions, "positions": positions,
                                    "status": sim.status, "steps": sim.steps})
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--ckpt", default="training/runs/policy/checkpoint.pt")
    p.add_argument("--out", default="models/reach-policy")
    p.add_argument("--fixtures", default="test/fixtures")
    p.add_argument("--eval", default=None, help="JSON line from eval_policy.py to record in the manifest")
    args = p.parse_args()

    ckpt = torch.load(args.ckpt)
    a = ckpt["args"]
    model = load_ema(args.ckpt)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    example = (torch.randn(3, HORIZON, 2), torch.tensor([5, 50, 99]), torch.randn(3, OBS_DIM))
    torch.onnx.export(
        model, example, str(out / "model.onnx"), opset_version=17,
        input_names=["x", "t", "obs"], output_names=["eps"],
        dynamic_axes={"x": {0: "batch"}, "t": {0: "batch"}, "obs": {0: "batch"}, "eps": {0: "batch"}},
    )
    log = ckpt["log"]
    tail = log[-5:] if log else []
    manifest = {
        "format": "ditto.model.v1",
        "name": "reach-policy",
        "description": "DP-T-style transformer diffusion policy (self-attention, cross-attention to [timestep, "
                       "observation] tokens, MLP; no adaLN gates) for the 2-D reach-around-the-obstacle task.",
        "onnx": "model.onnx",
        "objective": {
            "kind": "epsilon",
            "description": "DDPM: x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps; the model predicts eps; t is the "
                           "train-step index 0..99 (99 = most noise); x0 estimates are clipped to [-1, 1].",
            "schedule": {"betaSchedule": "squaredcos-cap-v2", "trainSteps": 100, "clipSample": 1.0},
        },
        "inputs": {
            "sample": {"name": "x", "shape": ["batch", HORIZON, 2], "dtype": "float32", "kind": "action-sequence"},
            "timestep": {"name": "t", "shape": ["batch"], "dtype": "int64", "scale": 1.0},
            "condition": {"name": "obs", "shape": ["batch", OBS_DIM], "dtype": "float32", "kind": "observation",
                          "dim": OBS_DIM,
                          "fields": ["px", "py", "gx-px", "gy-py", "cx-px", "cy-py", "radius"]},
        },
        "output": {"name": "eps"},
        "action": {"horizon": HORIZON, "dim": 2, "range": [-1.0, 1.0], "scale": MAX_STEP, "execute": EXECUTE},
        "task": {"name": "reach-around-obstacle", "maxSteps": MAX_STEPS, "maxStep": MAX_STEP,
                 "goalTolerance": GOAL_TOLERANCE, "evalSeed": EVAL_SEED},
        "recommended": {"sampler": "ddpm", "steps": 100},
        "architecture": {"blocks": a["depth"], "hidden": a["dim"], "heads": a["heads"], "mlpRatio": 4,
                         "tokens": HORIZON, "conditionTokens": 2},
        "parameters": sum(p.numel() for p in model.parameters()),
        "training": {
            "data": f"{a['episodes']} expert episodes (tangent following, margin {a['margin']}), seed 1",
            "command": "OMP_NUM_THREADS=1 /usr/bin/python3 training/train_policy.py --run training/runs/policy "
                       f"--episodes {a['episodes']} --margin {a['margin']:g} --batch {a['batch']} --ema {a['ema']:g} "
                       f"--max-minutes {a['max_minutes']:g} && /usr/bin/python3 training/export_policy.py",
            "steps": ckpt["step"],
            "batch": a["batch"],
            "wallMinutes": round(ckpt["elapsed"] / 60, 1),
            "finalLoss": round(sum(r["loss"] for r in tail) / len(tail), 4) if tail else None,
            "threads": a["threads"],
        },
    }
    if args.eval:
        manifest["recipeEvaluation"] = json.loads(Path(args.eval).read_text())
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    fixtures = Path(args.fixtures)
    fixtures.mkdir(parents=True, exist_ok=True)
    (fixtures / "policy-sampler.json").write_text(json.dumps(sampler_fixture(model)) + "\n")
    (fixtures / "policy-trajectories.json").write_text(json.dumps(trajectory_fixture()) + "\n")
    print(f"exported step {ckpt['step']} to {out}")


if __name__ == "__main__":
    main()
