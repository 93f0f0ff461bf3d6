/** The part of gifenc's API Ditto uses (the package ships no types). */
declare module "gifenc" {
  interface FrameOptions {
    palette?: number[][];
    delay?: number;
    repeat?: number;
  }
  interface Encoder {
    writeFrame(index: Uint8Array, width: number, height: number, options?: FrameOptions): void;
    finish(): void;
    bytes(): Uint8Array;
  }
  const gifenc: { GIFEncoder(): Encoder };
  export default gifenc;
}
