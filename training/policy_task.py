"""The reach-around-the-obstacle task (docs: shared spec "diffusion-policy"): episodes, simulator, expert.

Everything here is plain float64 arithmetic (+ - * / sqrt) on numbers drawn from mulberry32, so the TypeScript port
(src/control/) reproduces the same episodes and trajectories bit for bit. The expert uses asin/atan-free geometry
too, but it only runs here (to make demonstrations), so it need not be portable.
"""

import math

MAX_STEP = 0.05  # |a| <= 0.05 per control step
MAX_STEPS = 80
GOAL_TOLERANCE = 0.05
HORIZON = 16  # action chunk length
OBS_DIM = 7
MASK32 = 0xFFFFFFFF


class Mulberry32:
    """mulberry32 (Tommy Ettinger): a 32-bit generator that is easy to reproduce exactly in JavaScript."""

    def __init__(self, seed: int):
        self.state = seed & MASK32

    def next_u32(self) -> int:
        self.state = (self.state + 0x6D2B79F5) & MASK32
        t = self.state
        t = ((t ^ (t >> 15)) * (t | 1)) & MASK32
        t = (t ^ (t + (((t ^ (t >> 7)) * (t | 61)) & MASK32))) & MASK32
        return (t ^ (t >> 14)) & MASK32

    def uniform(self, lo: float, hi: float) -> float:
        return lo + (hi - lo) * (self.next_u32() / 4294967296.0)


def make_episodes(seed: int, count: int) -> list[dict]:
    """The seeded episode set: start, goal, obstacle centre and radius, drawn in this exact order."""
    rng = Mulberry32(seed)
    episodes = []
    for _ in range(count):
        sy = rng.uniform(-0.3, 0.3)
        gy = rng.uniform(-0.3, 0.3)
        cx = (-0.8 + 0.8) / 2 + rng.uniform(-0.12, 0.12)
        cy = (sy + gy) / 2 + rng.uniform(-0.12, 0.12)
        r = rng.uniform(0.15, 0.3)
        episodes.append({"start": (-0.8, sy), "goal": (0.8, gy), "center": (cx, cy), "radius": r})
    return episodes


def clip_action(ax: float, ay: float) -> tuple[float, float]:
    """Clips the action vector's length to MAX_STEP (direction kept)."""
    n = math.sqrt(ax * ax + ay * ay)
    if n > MAX_STEP:
        s = MAX_STEP / n
        return ax * s, ay * s
    return ax, ay


class Sim:
    """One episode. status: 'running' | 'success' | 'collision' | 'timeout'."""

    def __init__(self, episode: dict):
        self.ep = episode
        self.p = episode["start"]
        self.steps = 0
        self.status = "running"

    def observation(self) -> list[float]:
        px, py = self.p
        gx, gy = self.ep["goal"]
        cx, cy = self.ep["center"]
        return [px, py, gx - px, gy - py, cx - px, cy - py, self.ep["radius"]]

    def step(self, ax: float, ay: float) -> str:
        if self.status != "running":
            return self.status
        ax, ay = clip_action(ax, ay)
        self.p = (self.p[0] + ax, self.p[1] + ay)
        self.steps += 1
        cx, cy = self.ep["center"]
        gx, gy = self.ep["goal"]
        dcx, dcy = self.p[0] - cx, self.p[1] - cy
        dgx, dgy = self.p[0] - gx, self.p[1] - gy
        if math.sqrt(dcx * dcx + dcy * dcy) < self.ep["radius"]:
            self.status = "collision"
        elif math.sqrt(dgx * dgx + dgy * dgy) < GOAL_TOLERANCE:
            self.status = "success"
        elif self.steps >= MAX_STEPS:
            self.status = "timeout"
        return self.status


def segment_blocked(p, g, c, radius) -> bool:
    """Whether the segment p→g passes within `radius` of c."""
    dx, dy = g[0] - p[0], g[1] - p[1]
    L2 = dx * dx + dy * dy
    if L2 == 0:
        return False
    u = max(0.0, min(1.0, ((c[0] - p[0]) * dx + (c[1] - p[1]) * dy) / L2))
    qx, qy = p[0] + u * dx - c[0], p[1] + u * dy - c[1]
    return qx * qx + qy * qy < radius * radius


def expert_action(sim: Sim, side: int, margin: float) -> tuple[float, float]:
    """Closed-loop tangent following around the obstacle inflated by `margin`, passing it on `side` (±1)."""
    p, g, c = sim.p, sim.ep["goal"], sim.ep["center"]
    R = sim.ep["radius"] + margin
    if not segment_blocked(p, g, c, R):
        dx, dy = g[0] - p[0], g[1] - p[1]
        d = math.sqrt(dx * dx + dy * dy)
        s = min(MAX_STEP, d) / d if d > 0 else 0.0
        return dx * s, dy * s
    ux, uy = c[0] - p[0], c[1] - p[1]
    d = math.sqrt(ux * ux + uy * uy)
    ux, uy = ux / d, uy / d
    # Tangent direction: the direction to the centre turned by ±asin(R/d) (90° when on or inside the inflated disc).
    alpha = math.asin(min(1.0, R / d))
    ca, sa = math.cos(alpha), math.sin(side * alpha)
    tx, ty = ux * ca - uy * sa, ux * sa + uy * ca
    return tx * MAX_STEP, ty * MAX_STEP


def expert_episode(episode: dict, side: int, margin: float):
    """Runs the expert; returns (observations, actions, status)."""
    sim = Sim(episode)
    obs, acts = [], []
    while sim.status == "running":
        obs.append(sim.observation())
        a = expert_action(sim, side, margin)
        acts.append(a)
        sim.step(*a)
    return obs, acts, sim.status
