/** The part of gifenc's API Ditto uses (the package ships no types). */
declare module "gifenc" {
  interface FrameOptions {
    palette?: number[][];
    delay?: number;
    repeat?: number;
    /** Manual mode: the first frame, which writes the screen descriptor and global palette. */
    first?: boolean;
  }
  interface Encoder {
    writeFrame(index: Uint8Array, width: number, height: number, options?: FrameOptions): void;
    writeHeader(): void;
    finish(): void;
    /** The bytes written since the last reset, without a copy. */
    bytesView(): Uint8Array;
    /** Rewinds the internal buffer (its capacity is kept). */
    reset(): void;
  }
  /** auto (default true): write the header with the first frame. */
  const gifenc: { GIFEncoder(options?: { auto?: boolean; initialCapacity?: number }): Encoder };
  export default gifenc;
}
