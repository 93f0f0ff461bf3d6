/**
 * The `ditto.stream.v1` manifest of a streaming video tokenizer (CDT, shared/specs/cdt.md "Artifact"): its three
 * networks, each with a "first" and a "next" graph and the ordered slot list that is the contract between the
 * exporter (training/export_cdt.py) and the driver (src/video/): slot j is the graph's state_in_j / state_out_j.
 */
import { z } from "zod";

const positive = z.int().min(1);

export const slotSchema = z.object({
  name: z.string().min(1),
  /** "conv": stride-1 causal conv, 2 frames of state; "down": stride-2 time downsampler, 1 frame of state. */
  kind: z.enum(["conv", "down"]),
  frames: z.union([z.literal(1), z.literal(2)]),
  /** Frames of the initial state, the padding itself (uniform form): 2 for both kinds. */
  initialFrames: positive,
  /** [C, H, W] of one frame of state. */
  shape: z.tuple([positive, positive, positive]),
  pad: z.literal("zeros", { error: 'must be "zeros" (the only pad mode the driver initialises)' }),
});

const networkSchema = z.object({
  graphs: z.object({ first: z.string().min(1), next: z.string().min(1) }),
  slots: z.array(slotSchema),
});

export const streamManifestSchema = z.object({
  format: z.literal("ditto.stream.v1", { error: 'must be "ditto.stream.v1"' }),
  name: z.string().min(1),
  description: z.string().optional(),
  video: z.object({ channels: z.literal(1), height: positive, width: positive }),
  layout: z.literal("1+4k"),
  latent: z.object({ channels: positive, time: z.literal(4), space: positive }),
  networks: z.object({
    encoder: networkSchema,
    context: networkSchema.extend({ contexts: z.array(z.tuple([positive, positive, positive])).length(3) }),
    denoiser: networkSchema,
  }),
  chunk: z.object({ frames: positive, latentFrames: positive }),
  sampler: z.object({
    steps: positive,
    gamma: z.number().positive(),
    schedule: z.literal("cosine"),
    trainSteps: positive,
    prediction: z.literal("x0"),
  }),
});

export type StreamSlot = z.output<typeof slotSchema>;
export type StreamManifest = z.output<typeof streamManifestSchema>;
