/**
 * Builds the page (web/ → web/dist). The library is imported from src/ directly; its Node platform module is
 * replaced by an empty stub (the package.json "browser" field does the same for dist/), and onnxruntime-web is
 * not bundled: the page loads it from /ort/ at run time (src/web/ort-loader.ts explains why).
 */
import { fileURLToPath } from "node:url";
import { defineConfig, type Plugin } from "vite";

const NODE_ONLY = /[\\/]src[\\/](node[\\/]platform|runtime[\\/]node-backend)\.ts$/;

function stubNodeModules(): Plugin {
  return {
    name: "ditto-stub-node-modules",
    enforce: "pre",
    async resolveId(source, importer, options) {
      const resolved = await this.resolve(source, importer, { ...options, skipSelf: true });
      if (resolved && NODE_ONLY.test(resolved.id)) return "\0ditto-node-stub";
      return null;
    },
    load(id) {
      // Never executed in a browser (src/platform.ts imports the Node platform only under Node).
      if (id === "\0ditto-node-stub")
        return "export const nodePlatform = undefined; export const nodeBackend = undefined;";
      return null;
    },
  };
}

export default defineConfig({
  root: fileURLToPath(new URL(".", import.meta.url)),
  base: "./",
  plugins: [stubNodeModules()],
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    chunkSizeWarningLimit: 2000,
  },
  logLevel: "warn",
});
