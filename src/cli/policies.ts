/** `ditto policies`: the registry as help text. */
import { POLICIES } from "../cache/registry.ts";

export async function run(_argv: string[]): Promise<void> {
  const lines: string[] = ["Cache policies (use as --cache name:key=value,key=value):", ""];
  for (const p of POLICIES) {
    lines.push(`${p.name}${p.paper ? `  (${p.paper})` : ""}`, `    ${p.summary}`);
    const width = Math.max(14, ...p.options.map((o) => o.name.length + 2));
    for (const o of p.options) {
      const def = o.required
        ? "required"
        : o.default === undefined
          ? "optional"
          : `default ${Array.isArray(o.default) ? o.default.join(";") : o.default}`;
      lines.push(`    ${o.name.padEnd(width)}${o.help} (${def})`);
    }
    lines.push("");
  }
  process.stdout.write(`${lines.join("\n")}\n`);
}
