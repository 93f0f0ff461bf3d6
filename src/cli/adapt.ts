/** `ditto adapt --method tfup`: plain vs TFUP-adapted accuracy of the shipped classifier on shifted image sets. */
import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { tfupArtifact, tfupCacheFromArtifact } from "../adapt/artifact.ts";
import { type AdaptEvaluation, CLASSIFIER_TFUP, evaluateTfup } from "../adapt/evaluate.ts";
import { GENERATED_SHIFTS, type GeneratedShift, generatedSet } from "../adapt/generated.ts";
import { firstImages, idxPool, type Pool, pngFolder, writePreview } from "../adapt/pool-files.ts";
import { IMAGE_SHIFTS, type ImageSet } from "../adapt/shifts.ts";
import { InputError, listChoices } from "../errors.ts";
import { loadClassifierFeatures, loadTestPool } from "../node/tfup-classifier.ts";
import { loadPipeline, type Pipeline } from "../pipeline.ts";
import { parseNumber } from "./args.ts";
import { MODEL_OPTIONS, sessionOptions } from "./common.ts";
import { Progress } from "./progress.ts";

const SHIFT_NAMES = [...IMAGE_SHIFTS.map((s) => s.name), ...GENERATED_SHIFTS.map((s) => s.name)];
const TEACACHE_ARTIFACT = resolve(dirname(fileURLToPath(import.meta.url)), "../../bench/artifacts/teacache.json");

const HELP = `Usage: ditto adapt --method tfup [options]

Plain vs TFUP-adapted accuracy of a classifier on an unlabeled pool (TFUP: training-free feature cache, spec
shared/specs/tfup.md). Transductive: each set's cache is built from that set's images, without labels; labels
only score. The defaults are the paper's (α 0.3, β 1; τ_sem 1 on the classifier's logits), never tuned here.

  --method NAME      tfup (the only method)
  --pool SOURCE      test: the classifier's 1,000 shipped test images (default)
                     generated: images made by the DiT (--count, --cfg, --cache, --steps, --seed)
                     PATH: a folder of 28×28 PNGs (label = leading class number of the file name, e.g. 3-0042.png)
                     or an IDX image file (labels: --labels FILE.idx)
  --labels FILE      IDX labels for an IDX pool
  --shift LIST       a list, or all (default clean). Image shifts of the pool: ${IMAGE_SHIFTS.map((s) => s.name).join(", ")}.
                     Generated sets, which make their own pool (default --pool only):
${GENERATED_SHIFTS.map((s) => `                       ${s.name}: ${s.description}`).join("\n")}
  --count N          images per generated set (default 100, classes cycling)
  --cfg W            guidance for --pool generated (default: the DiT manifest's)
  --cache SPEC       cache policy for --pool generated (default none)
  --steps N          denoising steps for generated sets (default: the DiT manifest's)
  --seed N           first seed of generated sets (default 0)
  --alpha A          cache weight (default 0.3) — do not tune it on the labels you report
  --beta B           kernel sharpness (default 1)
  --save FILE        write the cache (ditto.tfup.v1 JSON) built from the pool (one shift only)
  --load FILE        apply a frozen cache built earlier from a reference pool, instead of building one from each
                     set (not transductive)
  --classifier DIR   classifier folder whose manifest names featureHead {features, classEmbeddings}
                     (default models/fashion-classifier)
  --preview FILE.png the first 10 images of each set, one row per set (look at what is being classified)
  --json             print {"method", "classifier", "params", "sets": [...], "averageShifted"} on stdout
  --markdown         print the table as Markdown
  --model PATH       the DiT for generated sets (default: the shipped fashion-dit)
  --threads N        ONNX Runtime threads per operator
  --quiet            no progress output
  -h, --help         this help
`;

interface SetResult extends AdaptEvaluation {
  shift: string;
  pool: string;
}

export async function run(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      ...MODEL_OPTIONS,
      method: { type: "string", default: "tfup" },
      pool: { type: "string" },
      labels: { type: "string" },
      shift: { type: "string", default: "clean" },
      count: { type: "string", default: "100" },
      cfg: { type: "string" },
      cache: { type: "string" },
      steps: { type: "string" },
      seed: { type: "string", default: "0" },
      alpha: { type: "string" },
      beta: { type: "string" },
      classifier: { type: "string" },
      save: { type: "string" },
      preview: { type: "string" },
      load: { type: "string" },
      json: { type: "boolean", default: false },
      markdown: { type: "boolean", default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(HELP);
    return;
  }
  if (values.method !== "tfup")
    throw new InputError(
      "OPTION_INVALID",
      `--method must be tfup, the only adaptation method (got '${values.method}')`,
    );
  const shifts = parseShifts(values.shift, values.pool !== undefined);
  if ((values.cfg !== undefined || values.cache !== undefined) && values.pool !== "generated")
    throw new InputError(
      "OPTION_INVALID",
      "--cfg and --cache set how --pool generated makes its images; add --pool generated",
    );
  const count = parseNumber("count", values.count, true) as number;
  if (count < 2) throw new InputError("OPTION_INVALID", `--count must be at least 2 (got ${count})`);
  const options = {
    ...CLASSIFIER_TFUP,
    alpha: parseNumber("alpha", values.alpha),
    beta: parseNumber("beta", values.beta),
  };
  const generation = {
    count,
    steps: parseNumber("steps", values.steps, true),
    seed: parseNumber("seed", values.seed, true),
  };

  if (values.save && shifts.length !== 1)
    throw new InputError(
      "OPTION_INVALID",
      `--save writes one set's cache; give one --shift (got ${shifts.join(", ")})`,
    );
  const classifier = await loadClassifierFeatures(values.classifier, undefined, sessionOptions(values));
  const featureHeader = {
    sha256: classifier.sha256,
    layer: classifier.featureModel.spec.features,
    classEmbeddings: classifier.featureModel.spec.classEmbeddings,
  };
  const frozen = values.load
    ? tfupCacheFromArtifact(readJson(values.load), classifier.featureModel.embeddings, featureHeader, values.load)
    : undefined;
  let pipeline: Pipeline | undefined;
  const dit = async () => {
    pipeline ??= await loadPipeline(values.model, { session: sessionOptions(values) });
    return pipeline;
  };
  const generate = async (label: string, cfg: number | undefined, cache: string | undefined) => {
    const p = await dit();
    const steps = generation.steps ?? p.manifest.recommended?.steps ?? 50;
    const progress = new Progress(`generate ${label}`, Math.ceil(count / 16) * steps, !values.quiet);
    const scale = cfg ?? p.manifest.recommended?.cfgScale ?? 1;
    const set = await generatedSet(p, {
      ...generation,
      cfg: scale,
      cache,
      onStep: (s) => progress.update(s.batch * s.steps + s.step + 1),
    });
    return { ...set, pool: `Ditto, CFG ${scale}, ${cache && cache !== "none" ? cache : "uncached"}` };
  };

  const results: SetResult[] = [];
  const previews: ImageSet[] = [];
  let base: Pool | undefined;
  for (const name of shifts) {
    const generated = GENERATED_SHIFTS.find((s) => s.name === name);
    let set: Pool;
    if (generated) {
      const { images, labels } = await generate(name, generated.cfg, cacheSpec(generated));
      set = { images, labels, pool: generated.label };
    } else {
      base ??= await loadPool(values.pool ?? "test", values.labels, () =>
        generate("pool", parseNumber("cfg", values.cfg), values.cache),
      );
      const shift = IMAGE_SHIFTS.find((s) => s.name === name);
      set = { ...base, images: shift ? shift.apply(base.images) : base.images };
    }
    previews.push(firstImages(set.images, 10));
    const r = await evaluateTfup(classifier.featureModel, set.images, set.labels, options, frozen);
    results.push({ shift: name, pool: set.pool, ...r });
    if (values.save)
      writeFileSync(
        values.save,
        `${JSON.stringify(tfupArtifact(r.cache, featureHeader, `${set.pool}, shift ${name}`))}\n`,
      );
    if (!values.quiet && !values.json) process.stderr.write(`${name}: done\n`);
  }
  await classifier.featureModel.release();
  if (pipeline) await pipeline.release();
  if (values.preview) writePreview(values.preview, previews);

  const shifted = results.filter((r) => r.shift !== "clean" && Number.isFinite(r.plainAccuracy));
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const averageShifted = shifted.length
    ? {
        sets: shifted.length,
        plainAccuracy: mean(shifted.map((r) => r.plainAccuracy)),
        adaptedAccuracy: mean(shifted.map((r) => r.adaptedAccuracy)),
      }
    : null;
  const params = results[0].params;
  if (values.json) {
    const report = {
      method: "tfup",
      classifier: {
        name: classifier.name,
        sha256: classifier.sha256,
        features: classifier.featureModel.spec.features,
        classEmbeddings: classifier.featureModel.spec.classEmbeddings,
      },
      params,
      transductive: !frozen,
      frozenCache: values.load ?? null,
      sets: results.map(({ params: _, cache: __, ...r }) => r),
      averageShifted,
    };
    process.stdout.write(`${JSON.stringify(report)}\n`);
    return;
  }
  const pct = (v: number) => (Number.isFinite(v) ? `${(100 * v).toFixed(1)} %` : "–");
  const delta = (r: { plainAccuracy: number; adaptedAccuracy: number }) =>
    Number.isFinite(r.plainAccuracy)
      ? (100 * (r.adaptedAccuracy - r.plainAccuracy)).toFixed(1).replace(/^(\d)/, "+$1")
      : "–";
  const header =
    `TFUP on ${classifier.name} (features '${classifier.featureModel.spec.features}', class embeddings ` +
    `'${classifier.featureModel.spec.classEmbeddings}'): ${params.head} head, α ${params.alpha}, β ${params.beta}, ` +
    `τ_sem ${params.tauSem}, K = clip(⌊${params.rhoCache}·N/C⌋, ${params.kMin}, ${params.kMax}); ` +
    (frozen
      ? `frozen cache from ${values.load} (${frozen.poolSize} reference images), not built from the evaluated sets.`
      : "transductive (each set's cache is built from that set, without labels).");
  if (values.markdown) {
    const lines = [
      "| shift | pool | images | plain | TFUP | Δ (points) | changed | keys (duplicates) |",
      "|---|---|---:|---:|---:|---:|---:|---:|",
      ...results.map(
        (r) =>
          `| ${r.shift} | ${r.pool} | ${r.images} | ${pct(r.plainAccuracy)} | ${pct(r.adaptedAccuracy)} | ${delta(r)} | ${r.changed} | ${r.keys} (${r.duplicates}) |`,
      ),
    ];
    if (averageShifted)
      lines.push(
        `| **average, ${averageShifted.sets} shifted sets** | | | ${pct(averageShifted.plainAccuracy)} | ${pct(averageShifted.adaptedAccuracy)} | ${delta(averageShifted)} | | |`,
      );
    process.stdout.write(`${header}\n\n${lines.join("\n")}\n`);
    return;
  }
  const row = (cells: string[]) =>
    `${cells[0].padEnd(18)}${cells[1].padStart(7)}${cells[2].padStart(9)}${cells[3].padStart(9)}${cells[4].padStart(7)}${cells[5].padStart(9)}  ${cells[6]}`;
  const lines = [header, "", row(["shift", "images", "plain", "TFUP", "Δ", "changed", "keys (dup.)"])];
  for (const r of results)
    lines.push(
      row([
        r.shift,
        String(r.images),
        pct(r.plainAccuracy),
        pct(r.adaptedAccuracy),
        delta(r),
        String(r.changed),
        `${r.keys} (${r.duplicates})`,
      ]),
    );
  if (averageShifted)
    lines.push(
      row([
        `avg ${averageShifted.sets} shifted`,
        "",
        pct(averageShifted.plainAccuracy),
        pct(averageShifted.adaptedAccuracy),
        delta(averageShifted),
        "",
        "",
      ]),
    );
  process.stdout.write(`${lines.join("\n")}\n`);
}

function parseShifts(text: string, poolGiven: boolean): string[] {
  const names =
    text === "all"
      ? poolGiven
        ? IMAGE_SHIFTS.map((s) => s.name)
        : SHIFT_NAMES
      : text
          .split(",")
          .map((s) => s.trim())
          .filter(Boolean);
  for (const name of names) {
    if (!SHIFT_NAMES.includes(name))
      throw new InputError(
        "OPTION_INVALID",
        `--shift: unknown shift '${name}'; choose ${listChoices(SHIFT_NAMES)} or all`,
      );
    if (poolGiven && GENERATED_SHIFTS.some((s) => s.name === name))
      throw new InputError(
        "OPTION_INVALID",
        `--shift ${name} generates its own pool, so it cannot be combined with --pool; drop --pool or pick an image shift`,
      );
  }
  if (names.length === 0) throw new InputError("OPTION_INVALID", "--shift names no shift");
  return names;
}

function readJson(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    throw new InputError("OPTION_INVALID", `--load: cannot read ${path}; write one with --save FILE`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new InputError("OPTION_INVALID", `--load: ${path} is not valid JSON (${(err as Error).message})`);
  }
}

function cacheSpec(shift: GeneratedShift): string {
  return shift.cache.replace("{teacache}", TEACACHE_ARTIFACT);
}

async function loadPool(
  source: string,
  labelsPath: string | undefined,
  generate: () => Promise<{ images: ImageSet; labels: Int32Array; pool: string }>,
): Promise<Pool> {
  if (source === "test") {
    const t = await loadTestPool();
    return {
      images: { data: t.images, count: t.count, channels: 1, height: 28, width: 28 },
      labels: t.labels,
      pool: "test images",
    };
  }
  if (source === "generated") return generate();
  const path = resolve(source);
  if (!existsSync(path))
    throw new InputError(
      "OPTION_INVALID",
      `--pool: ${path} does not exist; give test, generated, a PNG folder or an IDX file`,
    );
  return statSync(path).isDirectory() ? pngFolder(path) : idxPool(path, labelsPath);
}
