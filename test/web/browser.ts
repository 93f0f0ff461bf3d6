/**
 * Shared by the browser test and bench:web: builds the page, serves it the way `ditto web` does, and drives the
 * system Chromium with playwright-core (never a downloaded browser).
 */
import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type BrowserContext, chromium, type Page } from "playwright-core";
import { PACKAGE_ROOT, startWebServer } from "../../src/serve/web-server.ts";

export const CHROMIUM_CANDIDATES = ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"];

/** The Chromium to drive: $DITTO_CHROMIUM, else the first system one found; a clear error when none is. */
export function chromiumPath(): string {
  const given = process.env.DITTO_CHROMIUM;
  if (given) {
    if (!existsSync(given)) throw new Error(`DITTO_CHROMIUM=${given} does not exist`);
    return given;
  }
  const found = CHROMIUM_CANDIDATES.find((p) => existsSync(p));
  if (!found) {
    throw new Error(
      "no Chromium found for the browser test. On Debian/Ubuntu run `sudo bash scripts/system-deps.sh` " +
        "(installs the `chromium` package), or point DITTO_CHROMIUM at a Chromium or Chrome binary.",
    );
  }
  return found;
}

export async function buildPage(): Promise<void> {
  const { build } = await import("vite");
  await build({ configFile: join(PACKAGE_ROOT, "web", "vite.config.ts"), logLevel: "error" });
}

export interface BrowserSession {
  browser: BrowserContext;
  page: Page;
  url: string;
  close(): Promise<void>;
}

/** Serves the built page on a free loopback port and opens it in headless Chromium. */
export async function openPage(
  query = "",
  options: { extraArgs?: string[]; modelsDir?: string; allowError?: boolean } = {},
): Promise<BrowserSession> {
  const { server, url } = await startWebServer({ port: 0, modelsDir: options.modelsDir });
  const extraArgs = options.extraArgs ?? [];
  let browser: BrowserContext;
  try {
    browser = await chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), "ditto-chromium-")), {
      executablePath: chromiumPath(),
      headless: true,
      viewport: { width: 1240, height: 1000 },
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        ...extraArgs,
      ],
    });
  } catch (err) {
    server.close();
    throw err;
  }
  const close = async () => {
    await browser.close();
    await new Promise((ok) => server.close(ok));
  };
  const page = browser.pages()[0] ?? (await browser.newPage());
  try {
    const logs: string[] = [];
    page.on("console", (m) => logs.push(`${m.type()}: ${m.text()}`));
    page.on("pageerror", (e) => logs.push(`pageerror: ${e.message}`));
    await page.goto(`${url}${query}`);
    await page.waitForFunction(
      () => ["ready", "error"].includes((window as unknown as { ditto: { state: string } }).ditto?.state),
      undefined,
      { timeout: 120_000 },
    );
    const state = await page.evaluate(() => (window as unknown as { ditto: { state: string; error?: string } }).ditto);
    if (state.state === "error" && !options.allowError)
      throw new Error(`the page failed to start: ${state.error}\n${logs.join("\n")}`);
  } catch (err) {
    await close(); // a page that failed to start must not leave the browser and server holding the test run open
    throw err;
  }
  return {
    browser,
    page,
    url,
    close,
  };
}
