/** Drawing for the page: image grids and the per-step strip of what each unit did. */
import type { RunReport } from "../src/web/index.ts";

interface Images {
  data: Float32Array;
  count: number;
  channels: number;
  height: number;
  width: number;
}

const SCALE = 4;
const LABEL = 16;
const GAP = 6;

/** Images side by side (wrapping after 6), each scaled up ×4 with a caption under it. */
export function renderGrid(canvas: HTMLCanvasElement, images: Images, labels: string[]): void {
  const { count, channels, height: h, width: w } = images;
  const columns = Math.min(count, 6);
  const rows = Math.ceil(count / columns);
  const cellW = Math.max(w * SCALE, 112);
  canvas.width = columns * (cellW + GAP) + GAP;
  canvas.height = rows * (h * SCALE + LABEL + GAP) + GAP;
  const ctx = canvas.getContext("2d");
  if (!ctx) return;
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.imageSmoothingEnabled = false;
  for (let n = 0; n < count; n++) {
    const tile = new ImageData(w, h);
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++)
        for (let c = 0; c < 3; c++)
          tile.data[(y * w + x) * 4 + c] = Math.round(
            255 * images.data[((n * channels + (channels === 1 ? 0 : c)) * h + y) * w + x],
          );
    for (let i = 3; i < tile.data.length; i += 4) tile.data[i] = 255;
    const ox = GAP + (n % columns) * (cellW + GAP);
    const oy = GAP + Math.floor(n / columns) * (h * SCALE + LABEL + GAP);
    const bitmap = document.createElement("canvas");
    bitmap.width = w;
    bitmap.height = h;
    bitmap.getContext("2d")?.putImageData(tile, 0, 0);
    ctx.drawImage(bitmap, ox + (cellW - w * SCALE) / 2, oy, w * SCALE, h * SCALE);
    ctx.fillStyle = "#333";
    ctx.font = "11px system-ui, sans-serif";
    ctx.textAlign = "center";
    ctx.fillText(labels[n] ?? "", ox + cellW / 2, oy + h * SCALE + 12, cellW);
  }
}

export const DECISION_COLOURS: Record<string, string> = {
  C: "#3b6fd8", // computed
  R: "#3fae5a", // reused
  F: "#f0a030", // forecast
  N: "#d23c3c", // cached value not finite, recomputed
};

/** Rows: units (blocks or branches); columns: steps; colour: what the cache did there. */
export function renderStrip(canvas: HTMLCanvasElement, report: RunReport): void {
  const steps = [...new Set(report.trace.map((t) => t.step))].sort((a, b) => a - b);
  // Under separate CFG passes a step has two evaluations; the first pass stands for the step.
  const byStep = steps.map((s) => report.trace.find((t) => t.step === s)?.decisions ?? "");
  const units = report.units.map((u) => readableUnit(u.name));
  const left = 110;
  const top = 18;
  const cell = Math.max(6, Math.min(28, Math.floor(720 / Math.max(1, steps.length))));
  const row = units.length > 30 ? 6 : 11;
  canvas.width = left + steps.length * cell + 10;
  canvas.height = top + units.length * row + 4;
  const ctx = canvas.getContext("2d");
  if (!ctx) return;
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.font = "10px system-ui, sans-serif";
  ctx.fillStyle = "#333";
  ctx.textAlign = "center";
  steps.forEach((s, i) => {
    if (steps.length <= 25 || i % 5 === 0 || i === steps.length - 1)
      ctx.fillText(String(s + 1), left + i * cell + cell / 2, 12);
  });
  ctx.textAlign = "right";
  units.forEach((name, u) => {
    if (row >= 10 || u % 4 === 0) ctx.fillText(name, left - 6, top + u * row + row - 2);
    byStep.forEach((letters, i) => {
      ctx.fillStyle = DECISION_COLOURS[letters[u] ?? ""] ?? "#ddd";
      ctx.fillRect(left + i * cell, top + u * row, cell - 1, row - 1);
    });
    ctx.fillStyle = "#333";
  });
  ctx.textAlign = "left";
  ctx.fillText("step →", 4, 12);
}

/** "blocks0-11+stacked" → "blocks 0–11", "block3.attn" → "block 3 attn": segment names as a reader would say them. */
function readableUnit(name: string): string {
  return name
    .replace(/\+stacked$/, "")
    .replace(/^blocks?(\d+)-(\d+)/, "blocks $1–$2")
    .replace(/^blocks?(\d+)/, "block $1")
    .replace(/[.:/]/g, " ");
}
