"""Moving Fashion-MNIST: a deterministic synthetic video generator (CDT recipe, issue 18).

Garments bounce around a square canvas. Everything is integer arithmetic on a 32-bit PRNG (mulberry32), so the
TypeScript twin (src/video/moving-fashion.ts) produces bit-identical uint8 frames for the same seed and garment
bank; test/video-data.test.ts checks that against a fixture recorded by `export_cdt.py --fixtures`.

Recipe of one video (seed s, garment bank of N 28x28 images):
  rng = mulberry32(s); for each of `objects` garments: index = rng() % N, x = rng() % (canvas - 14 + 1),
  y = rng() % (...), vx = STEPS[rng() % 4], vy = STEPS[rng() % 4].
  Garments are 2x2 mean-pooled to 14x14 ((a+b+c+d+2) >> 2). Each frame is the pixelwise max of the garments at
  their positions; then each position moves by its velocity and reflects off the walls.
"""

import numpy as np

STEPS = (-2, -1, 1, 2)
GARMENT = 14


def mulberry32(seed: int):
    """The mulberry32 generator: yields uint32 values; same sequence as the TypeScript version."""
    state = seed & 0xFFFFFFFF
    while True:
        state = (state + 0x6D2B79F5) & 0xFFFFFFFF
        t = state
        t = ((t ^ (t >> 15)) * (t | 1)) & 0xFFFFFFFF
        t ^= (t + (((t ^ (t >> 7)) * (t | 61)) & 0xFFFFFFFF)) & 0xFFFFFFFF
        yield (t ^ (t >> 14)) & 0xFFFFFFFF


def pool_garment(image: np.ndarray) -> np.ndarray:
    """28x28 uint8 -> 14x14 uint8 by rounded 2x2 mean (integer arithmetic)."""
    a = image.astype(np.int32).reshape(GARMENT, 2, GARMENT, 2)
    return ((a.sum(axis=(1, 3)) + 2) >> 2).astype(np.uint8)


def reflect(p: int, v: int, limit: int) -> tuple[int, int]:
    p += v
    if p < 0:
        return -p, -v
    if p > limit:
        return 2 * limit - p, -v
    return p, v


def moving_fashion(bank: np.ndarray, seed: int, frames: int, canvas: int = 32, objects: int = 2) -> np.ndarray:
    """One video: uint8 [frames, canvas, canvas]."""
    rng = mulberry32(seed)
    limit = canvas - GARMENT
    things = []
    for _ in range(objects):
        index = next(rng) % bank.shape[0]
        x = next(rng) % (limit + 1)
        y = next(rng) % (limit + 1)
        vx = STEPS[next(rng) % 4]
        vy = STEPS[next(rng) % 4]
        things.append([pool_garment(bank[index]), x, y, vx, vy])
    video = np.zeros((frames, canvas, canvas), dtype=np.uint8)
    for f in range(frames):
        for thing in things:
            garment, x, y = thing[0], thing[1], thing[2]
            window = video[f, y : y + GARMENT, x : x + GARMENT]
            np.maximum(window, garment, out=window)
        for thing in things:
            thing[1], thing[3] = reflect(thing[1], thing[3], limit)
            thing[2], thing[4] = reflect(thing[2], thing[4], limit)
    return video


def main() -> None:
    """Records the fixture test/video-data.test.ts compares the TypeScript generator against."""
    import argparse
    import base64
    import json
    from pathlib import Path

    p = argparse.ArgumentParser()
    p.add_argument("--fixture", default="test/fixtures/moving-fashion.json")
    args = p.parse_args()
    bank_path = Path(__file__).resolve().parent.parent / "models/fashion-classifier/test-subset-images.idx"
    bank = np.fromfile(bank_path, dtype=np.uint8, offset=16).reshape(-1, 28, 28)
    rng = mulberry32(1)
    cases = []
    for seed, frames, canvas, objects in [(0, 9, 32, 2), (12345, 13, 32, 3), (7, 5, 16, 1), (2**31 + 5, 7, 48, 2)]:
        video = moving_fashion(bank, seed, frames, canvas, objects)
        cases.append({"seed": seed, "frames": frames, "canvas": canvas, "objects": objects,
                      "video": base64.b64encode(video.tobytes()).decode()})
    fixture = {"garments": "models/fashion-classifier/test-subset-images.idx",
               "mulberry32_seed1": [next(rng) for _ in range(5)], "cases": cases}
    Path(args.fixture).write_text(json.dumps(fixture) + "\n")


if __name__ == "__main__":
    main()
