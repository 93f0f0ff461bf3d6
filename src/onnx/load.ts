/** Reading ONNX files: decoding, external-data inlining, hashing, and clear errors for bad files. */
import { ModelError } from "../errors.ts";
import { platform } from "../platform.ts";
import { graphOf, type ModelProto, onnx, type TensorProto, toNumber } from "./proto.ts";

export interface LoadedOnnx {
  proto: ModelProto;
  path: string;
  /** SHA-256 of the .onnx file's bytes, recorded in calibration artifacts. */
  sha256: string;
  /** Bytes a session can load: the original file, or the re-encoded model when external data was inlined. */
  bytes: Uint8Array;
}

const EXTERNAL = 1; // TensorProto.DataLocation.EXTERNAL

export async function loadOnnx(path: string): Promise<LoadedOnnx> {
  const { resolve, dirname, kind, readBytes, sha256 } = platform();
  const full = resolve(path);
  const info = await kind(full);
  if (!info) {
    throw new ModelError(
      "MODEL_NOT_FOUND",
      `ONNX model not found: ${full}. Check the path, or omit --model to use the shipped default.`,
      { path: full },
    );
  }
  if (info !== "file") {
    throw new ModelError(
      "MODEL_NOT_FOUND",
      `${full} is not a file; pass the .onnx file (or a folder holding manifest.json).`,
      { path: full },
    );
  }
  const bytes = await readBytes(full);
  const proto = decodeOnnx(bytes, full);
  const inlined = await inlineExternalData(proto, dirname(full));
  return {
    proto,
    path: full,
    sha256: await sha256(bytes),
    bytes: inlined ? onnx.ModelProto.encode(proto).finish() : bytes,
  };
}

/** Decodes and sanity-checks ONNX bytes; `source` names the file in errors. */
export function decodeOnnx(bytes: Uint8Array, source: string): ModelProto {
  let proto: ModelProto;
  try {
    proto = onnx.ModelProto.decode(bytes);
  } catch (err) {
    throw new ModelError(
      "MODEL_MALFORMED",
      `${source} is not a valid ONNX file (protobuf decoding failed: ${(err as Error).message}). ` +
        "The file may be truncated or not an ONNX model; re-export it or download it again.",
      { path: source },
    );
  }
  const graph = graphOf(proto);
  if (!graph || graph.node.length === 0 || toNumber(proto.irVersion) <= 0 || proto.opsetImport.length === 0) {
    throw new ModelError(
      "MODEL_MALFORMED",
      `${source} decoded but holds no ONNX graph (ir_version ${toNumber(proto.irVersion)}, ` +
        `${graph?.node.length ?? 0} nodes, ${proto.opsetImport.length} opset imports). Is it really an .onnx file?`,
      { path: source },
    );
  }
  return proto;
}

/** Moves initializers stored in external files into the model, so every sub-model is self-contained. */
async function inlineExternalData(proto: ModelProto, baseDir: string): Promise<boolean> {
  let inlined = false;
  const files = new Map<string, Uint8Array>();
  for (const tensor of (graphOf(proto)?.initializer ?? []) as TensorProto[]) {
    if (tensor.dataLocation !== EXTERNAL) continue;
    const entry = Object.fromEntries(tensor.externalData.map((e) => [e.key, e.value]));
    const location = entry.location;
    if (!location)
      throw new ModelError(
        "MODEL_MALFORMED",
        `initializer ${tensor.name} says its data is external but names no location`,
      );
    let file = files.get(location);
    if (!file) {
      const path = platform().resolve(baseDir, location);
      file = await platform()
        .readBytes(path)
        .catch(() => {
          throw new ModelError(
            "MODEL_NOT_FOUND",
            `external data file ${path} (for initializer ${tensor.name}) not found; keep it beside the .onnx file`,
            { path },
          );
        });
      files.set(location, file);
    }
    const offset = Number(entry.offset ?? 0);
    const length = entry.length !== undefined ? Number(entry.length) : file.length - offset;
    if (offset + length > file.length) {
      throw new ModelError(
        "MODEL_MALFORMED",
        `external data for ${tensor.name} runs past the end of ${location} (truncated file?)`,
      );
    }
    tensor.rawData = file.subarray(offset, offset + length);
    tensor.externalData = [];
    tensor.dataLocation = 0;
    inlined = true;
  }
  return inlined;
}
