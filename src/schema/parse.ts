/**
 * Checking what users feed Ditto (manifests, artifacts, sweep and cache-config files) against zod schemas, with
 * errors that name the file, the field and the fix. Every loader goes through here, so a file is checked whole
 * before any work starts: a wrong type, a missing field, a list of the wrong length or an out-of-range number is a
 * DittoError with a stable code, never a crash later or a silent wrong run.
 */
import type { z } from "zod";
import { DittoError, type DittoErrorCode } from "../errors.ts";
import { platform } from "../platform.ts";

export interface SchemaContext {
  /** The file (or "cache config", …) being checked, named in every message. */
  source: string;
  code: DittoErrorCode;
  /** How to fix it, appended to the message, e.g. "Recalibrate with `ditto profile --method bac`." */
  fix: string;
  /** The DittoError subclass to throw (default DittoError). */
  error?: new (
    code: DittoErrorCode,
    message: string,
    details?: Record<string, unknown>,
  ) => DittoError;
}

/** `a.b[3].c` for a zod issue path. */
export function fieldPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const key of path) out += typeof key === "number" ? `[${key}]` : `${out ? "." : ""}${String(key)}`;
  return out || "the top level";
}

function describeIssue(issue: z.core.$ZodIssue): string {
  const field = fieldPath(issue.path);
  return /^(must|needs|has)\b/.test(issue.message) ? `${field} ${issue.message}` : `${field}: ${issue.message}`;
}

/** Checks `raw` against `schema`; returns the parsed value or throws naming the first few fields that fail. */
export function parseWithSchema<S extends z.ZodType>(schema: S, raw: unknown, ctx: SchemaContext): z.output<S> {
  const result = schema.safeParse(raw);
  if (result.success) return result.data;
  const issues = result.error.issues;
  const listed = issues.slice(0, 3).map(describeIssue).join("; ");
  const more = issues.length > 3 ? ` (and ${issues.length - 3} more)` : "";
  const ErrorClass = ctx.error ?? DittoError;
  throw new ErrorClass(ctx.code, `${ctx.source}: ${listed}${more}. ${ctx.fix}`, {
    path: ctx.source,
    field: fieldPath(issues[0].path),
    issues: issues.slice(0, 10).map((i) => ({ field: fieldPath(i.path), message: i.message })),
  });
}

/** JSON text checked against `schema`; invalid JSON is the same error code. */
export function parseJsonWithSchema<S extends z.ZodType>(schema: S, text: string, ctx: SchemaContext): z.output<S> {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    const ErrorClass = ctx.error ?? DittoError;
    throw new ErrorClass(ctx.code, `${ctx.source} is not valid JSON: ${(err as Error).message}. ${ctx.fix}`, {
      path: ctx.source,
    });
  }
  return parseWithSchema(schema, raw, ctx);
}

/** Reads a JSON file (through the platform) and checks it; a missing file says so and gives the fix. */
export function readJsonFileSync<S extends z.ZodType>(
  schema: S,
  path: string,
  ctx: Omit<SchemaContext, "source"> & { notFound?: string },
): z.output<S> {
  let text: string;
  try {
    text = platform().readTextSync(path);
  } catch {
    const ErrorClass = ctx.error ?? DittoError;
    throw new ErrorClass(ctx.code, `${path} not found. ${ctx.notFound ?? ctx.fix}`, { path });
  }
  return parseJsonWithSchema(schema, text, { ...ctx, source: path });
}
