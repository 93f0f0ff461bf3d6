/**
 * `schedule`: executes any static table m[s][u] (1 = compute the unit and refresh its cached pre-gate value,
 * 0 = reuse it with the current gate). BAC, HarmoniCa and Learning-to-Cache all produce such tables; `bac` is the
 * BAC profile + this executor. Row 0 always computes. Spec: shared/specs/bac.md "Runtime", harmonica.md "Runtime".
 */

import type { Tensor } from "onnxruntime-common";
import { ArtifactError, InputError } from "../../errors.ts";
import { type ArtifactHeader, checkArtifact, readArtifact } from "../../profiling/artifact.ts";
import { byteSize } from "../../runtime/tensor-ops.ts";
import { formatSpec, type OptionSchema, resolveOptions } from "../options.ts";
import type {
  Approximation,
  CachePolicy,
  ComputedUnit,
  Decision,
  PolicyState,
  RunContext,
  StepView,
} from "../policy.ts";
import { atomUnits, synchronousUnits } from "../policy.ts";

/** Any artifact carrying a table m[s][u] over the model's atoms (branch units), in Ditto's step order. */
export interface ScheduleArtifact extends ArtifactHeader {
  m: (0 | 1)[][];
  /** Alternative tables for ablations, by name (e.g. BAC's "acs", "unified", "uniform"). */
  tables?: Record<string, (0 | 1)[][]>;
}

export const SCHEDULE_OPTIONS: readonly OptionSchema[] = [
  {
    name: "artifact",
    type: "string",
    required: true,
    help: "an artifact holding a table m[s][u] (bac, harmonica, l2c)",
  },
  { name: "table", type: "string", default: "m", help: "which table of the artifact to run (m, or an ablation table)" },
];

export function schedule(
  options: { artifact?: string; table?: string } = {},
  method = "schedule",
  formats?: string[],
): CachePolicy {
  const o = resolveOptions(method, SCHEDULE_OPTIONS, { ...options });
  if (!o.artifact)
    throw new InputError("OPTION_INVALID", `${method} needs artifact=FILE.json (see ditto profile)`, {
      policy: method,
    });
  const path = o.artifact as string;
  const artifact = readScheduleArtifact(path, formats);
  const name = o.table as string;
  const table = name === "m" ? artifact.m : artifact.tables?.[name];
  if (!table) {
    throw new InputError(
      "OPTION_INVALID",
      `${path} has no table '${name}'; it has m${Object.keys(artifact.tables ?? {})
        .map((k) => `, ${k}`)
        .join("")}`,
    );
  }
  return tablePolicy(table, method, formatSpec(method, SCHEDULE_OPTIONS, o), (ctx) => {
    checkTable(table, ctx, path);
    checkArtifact(artifact, ctx, artifact.format.split(".")[1], path);
  });
}

/** A policy running an in-memory table (calibration uses it to replay candidate tables). */
export function tablePolicy(
  table: (0 | 1)[][],
  name = "table",
  spec = name,
  check?: (ctx: RunContext) => void,
): CachePolicy {
  return {
    name,
    spec,
    // A table whose every row computes all units or none (BAC's unified and uniform ablations) is FORA with its own
    // full steps: run as the whole stack's one unit, a full step hands out its gated sums for the steps that reuse
    // them instead of every branch's value, and every step is one session (engine, gate projections).
    units: (model) => (isSynchronous(table) ? synchronousUnits(model) : atomUnits(model)),
    createState: (ctx) => {
      check?.(ctx);
      return new ScheduleState(table, ctx.units.length);
    },
    describe: () => ({ method: name, computedFraction: computedFraction(table) }),
  };
}

function readScheduleArtifact(path: string, formats?: string[]): ScheduleArtifact {
  for (const method of formats ?? ["bac", "router"]) {
    try {
      return readArtifact<ScheduleArtifact>(path, method);
    } catch (err) {
      if ((err as ArtifactError).code !== "ARTIFACT_INVALID" || !/is not a/.test((err as Error).message)) throw err;
    }
  }
  throw new ArtifactError(
    "ARTIFACT_INVALID",
    `${path} holds no schedule table (expected a ditto.bac.v1 or ditto.router.v1 artifact)`,
    { path },
  );
}

/** Every row after the first (which always computes) computes all units or none. */
function isSynchronous(table: (0 | 1)[][]): boolean {
  return table.every((row, s) => s === 0 || row.every((v) => v === row[0]));
}

function checkTable(table: (0 | 1)[][], ctx: RunContext, path: string): void {
  // Columns are the model's branches, whatever units the table runs as.
  const branches = ctx.model.atoms.length;
  if (table.length !== ctx.steps || table.some((row) => row.length !== branches)) {
    throw new ArtifactError(
      "ARTIFACT_MISMATCH",
      `${path} holds a ${table.length}×${table[0]?.length ?? 0} table; this run needs ${ctx.steps} steps × ${branches} units`,
      { path },
    );
  }
}

export function computedFraction(table: (0 | 1)[][]): number {
  const total = table.length * (table[0]?.length ?? 0);
  return table.reduce((a, row) => a + row.reduce((x: number, v) => x + v, 0), 0) / Math.max(1, total);
}

/**
 * Unit u reads column u; a synchronous table run as one stacked unit reads column 0 (its rows are uniform).
 */
class ScheduleState implements PolicyState {
  private readonly values = new Map<number, Tensor>();

  constructor(
    private readonly table: (0 | 1)[][],
    private readonly unitCount: number,
  ) {}

  plan(view: StepView): Decision[] {
    return Array.from({ length: this.unitCount }, (_, u) => this.decide(u, view));
  }

  decide(unit: number, view: StepView): Decision {
    return view.step === 0 || this.table[view.step][unit] === 1 ? "compute" : "reuse";
  }

  /** A value is read only when the next step reuses the unit; a compute there replaces it first. */
  keeps(unit: number, view: StepView): boolean {
    return this.table[view.step + 1]?.[unit] === 0;
  }

  /** The steps after this one up to the unit's next update: they reuse what it computes now. */
  readsAt(unit: number, view: StepView): number[] {
    const steps: number[] = [];
    for (let s = view.step + 1; s < this.table.length && this.table[s][unit] === 0; s++) steps.push(s);
    return steps;
  }

  update(unit: number, computed: ComputedUnit): void {
    this.values.set(unit, computed.value());
  }

  approximate(unit: number): Approximation | undefined {
    const v = this.values.get(unit);
    return v ? { terms: [{ tensor: v, coef: 1 }] } : undefined;
  }

  bytes(): number {
    let total = 0;
    for (const v of this.values.values()) total += byteSize(v);
    return total;
  }
}
