/**
 * Between a list of frames and ONNX's channel-major chunk layout [C, F, H, W] (batch 1): a frame is [C, H, W]
 * (C·plane values), a chunk interleaves them per channel.
 */

/** Frames [C, plane] each → [C, F, plane]. */
export function joinFrames(frames: readonly Float32Array[], channels: number, plane: number): Float32Array {
  const f = frames.length;
  const out = new Float32Array(channels * f * plane);
  for (let i = 0; i < f; i++) {
    for (let c = 0; c < channels; c++) {
      out.set(frames[i].subarray(c * plane, (c + 1) * plane), (c * f + i) * plane);
    }
  }
  return out;
}

/** [C, F, plane] → F frames of [C, plane]. */
export function splitFrames(data: Float32Array, channels: number, frames: number): Float32Array[] {
  const plane = data.length / (channels * frames);
  const out: Float32Array[] = [];
  for (let i = 0; i < frames; i++) {
    const frame = new Float32Array(channels * plane);
    for (let c = 0; c < channels; c++)
      frame.set(data.subarray((c * frames + i) * plane, (c * frames + i + 1) * plane), c * plane);
    out.push(frame);
  }
  return out;
}
