/**
 * The Ditto page: the library's own pipeline on onnxruntime-web, run without and with a cache policy on the same
 * seeds, with measured speedup, ideal speedup (FLOPs skipped), PSNR/SSIM and a per-step map of what the cache did.
 * The policy form is generated from the registry's option schemas, so a new policy appears here by itself.
 */

import { classCondition, requireImage } from "../src/model/manifest.ts";
import {
  capabilityProblems,
  DittoError,
  type GenerationResult,
  loadPipeline,
  type Pipeline,
  POLICIES,
  parseCacheSpec,
  psnr,
  registerFile,
  registerUrl,
  ssim,
  startBrowser,
  toUnitRange,
  type WebDevice,
} from "../src/web/index.ts";
import type { PageResult } from "./page-result.ts";
import { renderGrid, renderStrip } from "./render.ts";

type OptionSchema = (typeof POLICIES)[number]["options"][number];

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;
const params = new URLSearchParams(location.search);

/** What tests and the benchmark read (window.ditto). */
const api: {
  state: string;
  error?: string;
  threads?: number;
  device?: WebDevice;
  pipeline?: Pipeline;
  result?: PageResult;
  /** Times one generation without progress reporting (bench:web). */
  time?: (options: {
    classes: number[];
    seeds: number[];
    steps: number;
    cfg: number;
    cache: string;
  }) => Promise<number>;
} = { state: "loading" };
(window as unknown as { ditto: typeof api }).ditto = api;

function setState(state: string): void {
  api.state = state;
  document.body.dataset.state = state;
}

function message(kind: "error" | "warning" | "info", text: string): void {
  const p = document.createElement("p");
  p.className = kind;
  p.textContent = text;
  $("messages").append(p);
}

function explain(err: unknown): string {
  if (err instanceof DittoError) return `${err.message} [${err.code}]`;
  return err instanceof Error ? err.message : String(err);
}

async function init(): Promise<void> {
  const requested = params.get("device") === "webgpu" ? "webgpu" : "wasm";
  const threadsParam = params.get("threads");
  let started: Awaited<ReturnType<typeof startBrowser>>;
  try {
    started = await startBrowser({
      device: requested,
      threads: threadsParam ? Number(threadsParam) : undefined,
      proxy: params.get("proxy") === "1",
      onDownload: (_url, loaded, total) => {
        const bar = $<HTMLProgressElement>("model-progress");
        bar.max = total ?? loaded;
        bar.value = loaded;
        $("model-label").textContent =
          `Downloading the model… ${(loaded / 1e6).toFixed(1)}${total ? ` / ${(total / 1e6).toFixed(1)}` : ""} MB`;
      },
    });
  } catch (err) {
    message("error", `Ditto cannot run in this browser: ${explain(err)}`);
    $("model-label").textContent = "Not available";
    setState("error");
    api.error = explain(err);
    return;
  }
  const { capabilities: caps, threads, device } = started;
  api.threads = threads;
  api.device = device;
  for (const warning of capabilityProblems(caps).warnings) message("warning", warning);
  const gpu = caps.webgpu
    ? `WebGPU adapter: ${caps.webgpu.vendor || "unknown"} ${caps.webgpu.architecture}${caps.webgpu.software ? " (software, slow)" : ""}`
    : "no WebGPU adapter";
  $("environment").textContent =
    `Runtime: ONNX Runtime Web on ${device === "webgpu" ? "WebGPU" : "WebAssembly (CPU)"} · ` +
    `${threads} thread${threads === 1 ? "" : "s"} · SIMD ${caps.simd ? "yes" : "no"} · ${gpu}`;
  fillDeviceChoice(device, caps.webgpu);

  let pipeline: Pipeline;
  try {
    $("model-label").textContent = "Loading the model…";
    pipeline = await loadPipeline();
  } catch (err) {
    message(
      "error",
      `The model failed to load: ${explain(err)}. Reload the page; if it persists, check that \`npx ditto web\` is serving models/.`,
    );
    $("model-label").textContent = "Model failed to load";
    setState("error");
    api.error = explain(err);
    return;
  }
  api.pipeline = pipeline;
  api.time = async (o) => (await pipeline.generate({ ...o, batch: o.seeds.length })).wallMs;
  const m = pipeline.manifest;
  $("model-label").textContent =
    `Model ready: ${m.name} — ${m.description ?? ""} ${m.architecture ? `${(m.architecture as { blocks: number }).blocks} transformer blocks, ` : ""}` +
    `${m.parameters ? `${(Number(m.parameters) / 1e6).toFixed(1)} M parameters, ` : ""}${requireImage(m, "the page").width}×${requireImage(m, "the page").height} images.`;
  $<HTMLProgressElement>("model-progress").hidden = true;
  fillClasses(m.classNames ?? [], classCondition(m)?.numClasses ?? 0);
  if (m.recommended?.cfgScale !== undefined) $<HTMLInputElement>("cfg").value = String(m.recommended.cfgScale);
  if (!m.inputs.condition) $<HTMLInputElement>("cfg").disabled = true;
  fillPolicies();
  $("controls").addEventListener("submit", (event) => {
    event.preventDefault();
    void run(pipeline);
  });
  $<HTMLButtonElement>("generate").disabled = false;
  setState("ready");
}

function fillDeviceChoice(device: WebDevice, webgpu?: { software: boolean }): void {
  const select = $<HTMLSelectElement>("device");
  const choices: [WebDevice, string, boolean][] = [
    ["wasm", "CPU (WebAssembly)", true],
    [
      "webgpu",
      webgpu ? `GPU (WebGPU${webgpu.software ? ", software adapter: slow" : ""})` : "GPU (no WebGPU adapter)",
      !!webgpu,
    ],
  ];
  for (const [value, label, enabled] of choices) {
    const option = new Option(label, value, false, value === device);
    option.disabled = !enabled;
    select.add(option);
  }
  select.addEventListener("change", () => {
    params.set("device", select.value);
    location.search = params.toString(); // ONNX Runtime's backend is chosen once per page load
  });
}

function fillClasses(names: string[], count: number): void {
  const box = $("classes");
  if (count === 0) {
    box.textContent = "This model draws without a class.";
    return;
  }
  const initial = new Set((params.get("classes") ?? "0,1").split(",").map(Number));
  for (let k = 0; k < count; k++) {
    const label = document.createElement("label");
    const input = document.createElement("input");
    input.type = "checkbox";
    input.value = String(k);
    input.checked = initial.has(k);
    label.append(input, ` ${names[k] ?? `class ${k}`}`);
    box.append(label);
  }
}

function fillPolicies(): void {
  const select = $<HTMLSelectElement>("policy");
  for (const p of POLICIES) {
    if (p.name === "none") continue; // "none" is the reference run the page always makes
    select.add(new Option(`${p.name}${p.paper ? ` (${p.paper})` : ""}`, p.name));
  }
  select.value = params.get("policy") ?? "fora";
  select.addEventListener("change", () => showPolicyOptions());
  showPolicyOptions();
}

/** One input per option of the chosen policy, typed by its schema; artifacts get a file picker and a URL box. */
function showPolicyOptions(): void {
  const def = POLICIES.find((p) => p.name === $<HTMLSelectElement>("policy").value) ?? POLICIES[1];
  $("policy-summary").textContent = def.summary[0].toUpperCase() + def.summary.slice(1);
  const box = $("policy-options");
  box.replaceChildren();
  const preset = Object.fromEntries(
    (params.get("options") ?? "")
      .split(",")
      .filter(Boolean)
      .map((kv) => kv.split("=")),
  );
  for (const opt of def.options) {
    const label = document.createElement("label");
    label.title = opt.help;
    label.dataset.option = opt.name;
    label.append(`${opt.name} `);
    if (opt.name === "artifact") {
      const file = document.createElement("input");
      file.type = "file";
      file.accept = ".json,application/json";
      file.dataset.role = "file";
      const url = document.createElement("input");
      url.type = "url";
      url.placeholder = "…or the artifact's URL";
      url.dataset.role = "url";
      label.append(file, url);
    } else label.append(inputFor(opt, preset[opt.name]));
    const help = document.createElement("small");
    help.textContent = ` ${opt.help}${opt.required ? " (required)" : ""}`;
    label.append(help);
    box.append(label);
  }
  box.oninput = () => showSpec();
  showSpec();
}

function inputFor(opt: OptionSchema, preset?: string): HTMLInputElement | HTMLSelectElement {
  const value = preset ?? (Array.isArray(opt.default) ? opt.default.join(";") : opt.default?.toString());
  if (opt.choices) {
    const select = document.createElement("select");
    for (const c of opt.choices) select.add(new Option(c, c, false, c === value));
    return select;
  }
  const input = document.createElement("input");
  if (opt.type === "bool") {
    input.type = "checkbox";
    input.checked = value === "true";
    return input;
  }
  input.type = opt.type === "int" || opt.type === "number" ? "number" : "text";
  if (opt.type === "int") input.step = "1";
  if (opt.type === "number") input.step = "any";
  if (opt.min !== undefined) input.min = String(opt.min);
  if (opt.max !== undefined) input.max = String(opt.max);
  if (opt.type.endsWith("list")) input.placeholder = "a;b;c";
  input.value = value ?? "";
  return input;
}

/** The cache spec the form describes, with artifacts named as registered files ("picked:NAME" or their URL). */
async function specFromForm(load: boolean): Promise<string> {
  const name = $<HTMLSelectElement>("policy").value;
  const def = POLICIES.find((p) => p.name === name);
  const parts: string[] = [];
  for (const opt of def?.options ?? []) {
    const label = $("policy-options").querySelector<HTMLElement>(`[data-option="${opt.name}"]`);
    if (!label) continue;
    let value: string | undefined;
    if (opt.name === "artifact") {
      const file = label.querySelector<HTMLInputElement>('[data-role="file"]')?.files?.[0];
      const url = label.querySelector<HTMLInputElement>('[data-role="url"]')?.value.trim();
      if (file) {
        value = `picked:${file.name}`;
        if (load) registerFile(value, await file.text());
      } else if (url) value = load ? await registerUrl(url) : url;
    } else {
      const input = label.querySelector<HTMLInputElement | HTMLSelectElement>("input, select");
      if (input instanceof HTMLInputElement && input.type === "checkbox") value = String(input.checked);
      else value = input?.value.trim() || undefined;
      const def = Array.isArray(opt.default) ? opt.default.join(";") : opt.default?.toString();
      if (value === def) value = undefined; // keep the spec short: defaults are implied
    }
    if (value !== undefined) parts.push(`${opt.name}=${value}`);
  }
  return parts.length ? `${name}:${parts.join(",")}` : name;
}

function showSpec(): void {
  void specFromForm(false).then((spec) => {
    $("spec").textContent = spec;
  });
}

function samplesFromForm(): { classes: number[]; seeds: number[] } {
  const picked = [...$("classes").querySelectorAll<HTMLInputElement>("input:checked")].map((i) => Number(i.value));
  const perClass = Math.max(1, Math.floor(Number($<HTMLInputElement>("per-class").value) || 1));
  const seed = Math.max(0, Math.floor(Number($<HTMLInputElement>("seed").value) || 0));
  if (picked.length === 0 && $("classes").querySelector("input"))
    throw new DittoError("OPTION_INVALID", "pick at least one class to draw");
  const classes = picked.flatMap((k) => Array(perClass).fill(k) as number[]);
  const n = Math.max(classes.length, perClass);
  return { classes, seeds: Array.from({ length: n }, (_, i) => seed + i) };
}

/** Lets the browser paint the progress bars now and then without slowing the run (at most every 50 ms). */
function makeYielder(): () => Promise<void> {
  let last = performance.now();
  const channel = new MessageChannel();
  return () => {
    if (performance.now() - last < 50) return Promise.resolve();
    return new Promise<void>((resolve) => {
      channel.port1.onmessage = () => {
        last = performance.now();
        resolve();
      };
      requestAnimationFrame(() => channel.port2.postMessage(null));
    });
  };
}

async function run(pipeline: Pipeline): Promise<void> {
  $("messages")
    .querySelectorAll(".error")
    .forEach((e) => {
      e.remove();
    });
  const button = $<HTMLButtonElement>("generate");
  let spec: string;
  let request: { classes?: number[]; seeds: number[]; steps: number; cfg: number };
  try {
    spec = await specFromForm(true);
    parseCacheSpec(spec); // checks options (and artifacts) before any work
    const { classes, seeds } = samplesFromForm();
    const steps = Number($<HTMLInputElement>("steps").value);
    const cfg = Number($<HTMLInputElement>("cfg").value);
    if (!Number.isInteger(steps) || steps < 2) throw new DittoError("OPTION_INVALID", "steps must be an integer ≥ 2");
    request = { classes: classes.length ? classes : undefined, seeds, steps, cfg };
  } catch (err) {
    message("error", explain(err));
    return;
  }
  button.disabled = true;
  setState("running");
  $("progress-area").hidden = false;
  try {
    const yieldNow = makeYielder();
    const progress = (which: "uncached" | "cached") => (p: { step: number; steps: number }) => {
      const bar = $<HTMLProgressElement>(`progress-${which}`);
      bar.max = p.steps;
      bar.value = p.step + 1;
      $(`progress-${which}-label`).textContent = `step ${p.step + 1} / ${p.steps}`;
    };
    for (const which of ["uncached", "cached"]) {
      $<HTMLProgressElement>(`progress-${which}`).value = 0;
      $(`progress-${which}-label`).textContent = "waiting";
    }
    const base = { ...request, batch: request.seeds.length, observer: () => yieldNow() };
    if ($<HTMLInputElement>("warmup").checked) {
      const one = { ...base, seeds: base.seeds.slice(0, 1), classes: base.classes?.slice(0, 1) };
      $("progress-uncached-label").textContent = "warming up";
      await pipeline.generate({ ...one, cache: spec });
      await pipeline.generate(one);
    }
    const uncached = await pipeline.generate({ ...base, cache: "none", onStep: progress("uncached") });
    const cached = await pipeline.generate({ ...base, cache: spec, onStep: progress("cached") });
    show(pipeline, uncached, cached);
    setState("done");
  } catch (err) {
    message("error", `Generation failed: ${explain(err)}`);
    api.error = explain(err);
    setState("ready");
  } finally {
    button.disabled = false;
  }
}

function show(pipeline: Pipeline, uncached: GenerationResult, cached: GenerationResult): void {
  const m = pipeline.manifest;
  const [count, channels, height, width] = uncached.dims;
  const img = (r: GenerationResult) => ({
    data: toUnitRange(r.samples, requireImage(m, "the page").range),
    count,
    channels,
    height,
    width,
  });
  const report = cached.reports[0];
  const full = cached.reports.reduce((a, r) => a + r.flopsFull, 0);
  const done = cached.reports.reduce((a, r) => a + r.flopsDone, 0);
  const result: PageResult = {
    spec: report.spec,
    dims: [...uncached.dims],
    seeds: uncached.seeds,
    classes: uncached.classes ? [...uncached.classes] : [],
    uncached: [...uncached.samples],
    cached: [...cached.samples],
    uncachedMs: uncached.wallMs,
    cachedMs: cached.wallMs,
    speedup: uncached.wallMs / cached.wallMs,
    idealSpeedup: full / done,
    psnr: psnr(img(cached), img(uncached)),
    ssim: ssim(img(cached), img(uncached)),
  };
  api.result = result;
  $("results").hidden = false;
  const labels = result.classes.length
    ? result.classes.map((k, i) => `${m.classNames?.[k] ?? k} · seed ${result.seeds[i]}`)
    : result.seeds.map((s) => `seed ${s}`);
  renderGrid($<HTMLCanvasElement>("grid-uncached"), img(uncached), labels);
  renderGrid($<HTMLCanvasElement>("grid-cached"), img(cached), labels);
  $("cached-spec").textContent = report.spec;
  $("time-uncached").textContent = `${(uncached.wallMs / 1000).toFixed(2)} s`;
  $("time-cached").textContent = `${(cached.wallMs / 1000).toFixed(2)} s`;
  const rows: [string, string, string][] = [
    ["Measured speedup", `${result.speedup.toFixed(2)}×`, "uncached time ÷ cached time, measured here"],
    ["Ideal speedup", `${result.idealSpeedup.toFixed(2)}×`, "if time followed the network work skipped (FLOPs)"],
    [
      "PSNR",
      Number.isFinite(result.psnr) ? `${result.psnr.toFixed(1)} dB` : "∞ (identical)",
      "cached vs uncached images; above 30 dB looks the same",
    ],
    ["SSIM", result.ssim.toFixed(4), "structural similarity; 1 = identical"],
    ["Units computed / skipped", `${report.unitsComputed} / ${report.unitsSkipped}`, "over all steps"],
  ];
  $("metrics").replaceChildren(
    ...rows.flatMap(([k, v, hint]) => {
      const dt = document.createElement("dt");
      dt.textContent = k;
      const dd = document.createElement("dd");
      dd.innerHTML = `<b></b> <small></small>`;
      (dd.firstChild as HTMLElement).textContent = v;
      (dd.lastChild as HTMLElement).textContent = hint;
      return [dt, dd];
    }),
  );
  renderStrip($<HTMLCanvasElement>("strip"), report);
}

void init();
