/** `ditto web`: serves the browser page (cached vs uncached generation on onnxruntime-web) on localhost. */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { InputError } from "../errors.ts";
import { startWebServer, WEB_DIST } from "../serve/web-server.ts";
import { parseNumber } from "./args.ts";

const HELP = `Usage: ditto web [--port N] [--host ADDRESS]

Serves the Ditto page: pick classes, seeds, steps and a cache policy, and it generates in your browser
(onnxruntime-web, WASM or WebGPU) uncached and cached side by side, with speedup, PSNR/SSIM and a per-step map.

  --port N        port to listen on (default 5173; 0 picks a free one)
  --host ADDRESS  address to bind (default 127.0.0.1; 0.0.0.0 exposes it on your network)
`;

export async function run(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: { port: { type: "string" }, host: { type: "string" }, help: { type: "boolean", short: "h" } },
  });
  if (values.help) {
    process.stdout.write(HELP);
    return;
  }
  if (!existsSync(join(WEB_DIST, "index.html"))) {
    throw new InputError(
      "OPTION_INVALID",
      `the page is not built (${WEB_DIST} has no index.html): run \`npm run build:web\` in the package, or \`npm run web\``,
    );
  }
  const port = parseNumber("port", values.port, true, { min: 0, max: 65535 }) ?? 5173;
  const { url } = await startWebServer({ port, host: values.host });
  process.stdout.write(`Ditto page: ${url}  (serving ${WEB_DIST} with COOP/COEP; Ctrl-C to stop)\n`);
  await new Promise(() => {}); // serve until interrupted
}
