/**
 * The reach-around-the-obstacle task (shared/specs/diffusion-policy.md), ported from training/policy_task.py: the
 * seeded episode set and the simulator. Plain float64 arithmetic (+ − × ÷ √) on mulberry32 draws, in the same order
 * as the Python, so episodes and trajectories match the recipe's bit for bit (test/control.test.ts checks this
 * against recorded Python trajectories).
 */

export interface Episode {
  start: [number, number];
  goal: [number, number];
  center: [number, number];
  radius: number;
}

export type EpisodeStatus = "running" | "success" | "collision" | "timeout";

export interface TaskSettings {
  /** Longest step |a| (actions are clipped to this length). */
  maxStep: number;
  maxSteps: number;
  goalTolerance: number;
}

export const REACH_TASK: TaskSettings = { maxStep: 0.05, maxSteps: 80, goalTolerance: 0.05 };

/** The evaluation set's seed in the recipe (training/eval_policy.py). */
export const EVAL_SEED = 7;

/** mulberry32 (Tommy Ettinger): 32-bit state, exact in JavaScript's integer ops. */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

/** The seeded episode set: start, goal, obstacle centre and radius, drawn in the recipe's order. */
export function makeEpisodes(seed: number, count: number): Episode[] {
  const next = mulberry32(seed);
  const uniform = (lo: number, hi: number) => lo + (hi - lo) * (next() / 4294967296);
  const episodes: Episode[] = [];
  for (let i = 0; i < count; i++) {
    const sy = uniform(-0.3, 0.3);
    const gy = uniform(-0.3, 0.3);
    const cx = (-0.8 + 0.8) / 2 + uniform(-0.12, 0.12);
    const cy = (sy + gy) / 2 + uniform(-0.12, 0.12);
    const radius = uniform(0.15, 0.3);
    episodes.push({ start: [-0.8, sy], goal: [0.8, gy], center: [cx, cy], radius });
  }
  return episodes;
}

/** One episode in progress. */
export class Simulator {
  readonly episode: Episode;
  readonly settings: TaskSettings;
  x: number;
  y: number;
  steps = 0;
  status: EpisodeStatus = "running";
  /** Every position visited, the start included. */
  readonly path: [number, number][];

  constructor(episode: Episode, settings: TaskSettings = REACH_TASK) {
    this.episode = episode;
    this.settings = settings;
    [this.x, this.y] = episode.start;
    this.path = [[this.x, this.y]];
  }

  /** [p, g − p, c − p, r], as the policy sees it. */
  observation(): number[] {
    const { goal, center, radius } = this.episode;
    return [this.x, this.y, goal[0] - this.x, goal[1] - this.y, center[0] - this.x, center[1] - this.y, radius];
  }

  /** Moves by the action clipped to length maxStep; collision is checked before success, then the step limit. */
  step(ax: number, ay: number): EpisodeStatus {
    if (this.status !== "running") return this.status;
    const n = Math.sqrt(ax * ax + ay * ay);
    if (n > this.settings.maxStep) {
      const s = this.settings.maxStep / n;
      ax *= s;
      ay *= s;
    }
    this.x += ax;
    this.y += ay;
    this.steps++;
    this.path.push([this.x, this.y]);
    const { goal, center, radius } = this.episode;
    const dcx = this.x - center[0];
    const dcy = this.y - center[1];
    const dgx = this.x - goal[0];
    const dgy = this.y - goal[1];
    if (Math.sqrt(dcx * dcx + dcy * dcy) < radius) this.status = "collision";
    else if (Math.sqrt(dgx * dgx + dgy * dgy) < this.settings.goalTolerance) this.status = "success";
    else if (this.steps >= this.settings.maxSteps) this.status = "timeout";
    return this.status;
  }
}
