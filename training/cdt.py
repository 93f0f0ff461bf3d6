"""A small CDT (Conditioned Diffusion-based video Tokenizer, arXiv 2503.03708) with an explicit feature cache.

Three networks, as in the spec (../shared/specs/cdt.md):
  Encoder         video [B,1,1+4k,H,W] -> latent mean [B,L,1+k,H/4,W/4] (causal; time x4, space x4)
  ContextDecoder  latent -> context features at three scales, at the video frame rate (1+4k frames)
  Denoiser        (x_t, t, context) -> x0 (a conditional causal 3D U-Net; spatial down/up only)

Every causal temporal convolution owns a *slot* of a `Stream`, numbered in call order. In the spec's uniform form
each slot's state is initialised to the padding itself (zeros here: CDT-base's "constant" pad) and the conv always
runs on concat(state, x) with no temporal padding; the new state is the last frames of that concat. Training runs
whole clips with zero states; the ONNX export makes each state an explicit input/output, so the TypeScript driver
(src/video/) can decode a video chunk by chunk with results equal to the whole-sequence pass.

Shapes are chosen so that no skip connection ever needs a resize: every spatial down/up is an exact factor 2 on a
canvas divisible by 4 (the official U-Net's nearest-neighbour `interpolate` on mismatched skips is what breaks
chunked-vs-whole equivalence there).
"""

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

TRAIN_STEPS = 8192  # N of the cosine beta schedule (spec: Diffusion decoder)


@dataclass
class CdtConfig:
    canvas: int = 32
    latent: int = 8
    enc: tuple = (16, 32, 48)  # channels at H, H/2, H/4
    dec: tuple = (48, 32, 16)  # context channels at H/4, H/2, H
    unet: tuple = (16, 32, 48)  # denoiser channels at H, H/2, H/4
    temb: int = 64

    def to_json(self) -> dict:
        return {"canvas": self.canvas, "latent": self.latent, "enc": list(self.enc), "dec": list(self.dec),
                "unet": list(self.unet), "temb": self.temb}


@dataclass
class Slot:
    name: str
    kind: str  # "conv" (2 frames) | "down" (1 frame; 2 frames of padding initially)
    frames: int
    initial_frames: int
    shape: list  # [C, H, W]


@dataclass
class Stream:
    """Cache states of one forward pass, consumed and produced in call order (the slot counter of the spec)."""

    states: list | None = None  # given states (export / chunked run); None = zeros (start of a video)
    out: list = field(default_factory=list)
    slots: list = field(default_factory=list)

    def take(self, like: torch.Tensor, frames: int) -> torch.Tensor:
        j = len(self.out)
        if self.states is not None:
            return self.states[j]
        b, c, _, h, w = like.shape
        return like.new_zeros((b, c, frames, h, w))

    def put(self, name: str, kind: str, state: torch.Tensor, initial_frames: int) -> None:
        self.out.append(state)
        _, c, f, h, w = state.shape
        self.slots.append(Slot(name, kind, f, initial_frames, [c, h, w]))


class CausalConv(nn.Module):
    """Temporal kernel 3, spatial kernel 3 (symmetric zero pad). State: the last 2 input frames."""

    def __init__(self, cin: int, cout: int, name: str):
        super().__init__()
        self.conv = nn.Conv3d(cin, cout, (3, 3, 3), padding=(0, 1, 1))
        self.name = name

    def forward(self, x: torch.Tensor, s: Stream) -> torch.Tensor:
        full = torch.cat([s.take(x, 2), x], dim=2)  # [B, C, 2 + F, H, W]
        s.put(self.name, "conv", full[:, :, -2:], 2)
        return self.conv(full)


class TimeDown(nn.Module):
    """Temporal kernel 3, stride 2, left pad 2 (1+2m frames -> 1+m). State: the last input frame.

    Uniform form with a 2-frame initial state (the padding) and a 1-frame state afterwards: concat(state, x) then
    has odd length on every chunk exactly when the first chunk has odd length and later chunks even length, which is
    the parity the remainder-first chunking produces (spec: Chunking, Pitfall 5).
    """

    def __init__(self, channels: int, name: str):
        super().__init__()
        self.conv = nn.Conv3d(channels, channels, (3, 1, 1), stride=(2, 1, 1))
        self.name = name

    def forward(self, x: torch.Tensor, s: Stream) -> torch.Tensor:
        full = torch.cat([s.take(x, 2), x], dim=2)
        s.put(self.name, "down", full[:, :, -1:], 2)
        return self.conv(full)


class TimeUp(nn.Module):
    """1x1 temporal conv producing 2 frames per frame (F -> 2F); on the video's first chunk the first output frame
    is dropped (F -> 2F - 1), which maps 1+k latent frames to 1+2k. Needs no cache."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv3d(channels, 2 * channels, 1)
        self.first = True  # set per export: "first" and "next" graphs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, f, h, w = x.shape
        y = self.conv(x).reshape(b, 2, c, f, h, w)  # [B, 2, C, F, H, W]: phase, channel, frame
        y = y.permute(0, 2, 3, 1, 4, 5).reshape(b, c, 2 * f, h, w)  # frame 2i+phase
        return y[:, :, 1:] if self.first else y


class SpaceDown(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Conv3d(cin, cout, (1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))

    def forward(self, x):
        return self.conv(x)


class SpaceUp(nn.Module):
    """Exact x2 nearest upsample per frame, then a spatial conv."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Conv3d(cin, cout, (1, 3, 3), padding=(0, 1, 1))

    def forward(self, x):
        b, c, f, h, w = x.shape
        x = x.reshape(b, c, f, h, 1, w, 1).expand(b, c, f, h, 2, w, 2).reshape(b, c, f, 2 * h, 2 * w)
        return self.conv(x)


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, name: str, temb: int = 0):
        super().__init__()
        self.conv1 = CausalConv(cin, cout, f"{name}.conv1")
        self.conv2 = CausalConv(cout, cout, f"{name}.conv2")
        self.skip = nn.Conv3d(cin, cout, 1) if cin != cout else None
        self.temb = nn.Linear(temb, cout) if temb else None
        with torch.no_grad():
            self.conv2.conv.weight.mul_(0.2)

    def forward(self, x, s: Stream, emb=None):
        h = self.conv1(F.silu(x), s)
        if self.temb is not None:
            h = h + self.temb(emb)[:, :, None, None, None]
        h = self.conv2(F.silu(h), s)
        return (x if self.skip is None else self.skip(x)) + h


class Encoder(nn.Module):
    def __init__(self, cfg: CdtConfig):
        super().__init__()
        c0, c1, c2 = cfg.enc
        self.conv_in = CausalConv(1, c0, "enc.conv_in")
        self.down1 = SpaceDown(c0, c1)
        self.res1 = ResBlock(c1, c1, "enc.res1")
        self.tdown1 = TimeDown(c1, "enc.tdown1")
        self.down2 = SpaceDown(c1, c2)
        self.res2 = ResBlock(c2, c2, "enc.res2")
        self.tdown2 = TimeDown(c2, "enc.tdown2")
        self.res3 = ResBlock(c2, c2, "enc.res3")
        self.out = nn.Conv3d(c2, 2 * cfg.latent, 1)

    def forward(self, x, s: Stream):
        h = self.down1(F.silu(self.conv_in(x, s)))
        h = self.tdown1(self.res1(h, s), s)
        h = self.tdown2(self.res2(self.down2(F.silu(h)), s), s)
        h = self.out(F.silu(self.res3(h, s)))
        mean, logvar = h.chunk(2, dim=1)
        return mean, logvar


class ContextDecoder(nn.Module):
    """The Compressor's decoder half: latent -> context at H/4, H/2, H (all at the video frame rate)."""

    def __init__(self, cfg: CdtConfig):
        super().__init__()
        c2, c1, c0 = cfg.dec
        self.conv_in = CausalConv(cfg.latent, c2, "ctx.conv_in")
        self.res1 = ResBlock(c2, c2, "ctx.res1")
        self.up1 = TimeUp(c2)
        self.conv1 = CausalConv(c2, c2, "ctx.conv1")
        self.up2 = TimeUp(c2)
        self.res2 = ResBlock(c2, c2, "ctx.res2")
        self.sup1 = SpaceUp(c2, c1)
        self.res3 = ResBlock(c1, c1, "ctx.res3")
        self.sup2 = SpaceUp(c1, c0)
        self.res4 = ResBlock(c0, c0, "ctx.res4")

    def set_first(self, first: bool) -> None:
        self.up1.first = first
        self.up2.first = first

    def forward(self, z, s: Stream):
        h = self.res1(self.conv_in(z, s), s)
        h = self.conv1(self.up1(h), s)
        c8 = self.res2(self.up2(h), s)
        c16 = self.res3(self.sup1(F.silu(c8)), s)
        c32 = self.res4(self.sup2(F.silu(c16)), s)
        return c32, c16, c8


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal features of 1000 * t (t = step / N in [0, 1))."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / half)
    args = 1000.0 * t[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


class Denoiser(nn.Module):
    """Conditional causal 3D U-Net predicting x0; the context enters by concatenation at every scale."""

    def __init__(self, cfg: CdtConfig):
        super().__init__()
        u0, u1, u2 = cfg.unet
        d2, d1, d0 = cfg.dec
        te = cfg.temb
        self.temb_dim = te
        self.temb = nn.Sequential(nn.Linear(te, te), nn.SiLU(), nn.Linear(te, te))
        self.conv_in = CausalConv(1 + d0, u0, "unet.conv_in")
        self.res0 = ResBlock(u0, u0, "unet.res0", te)
        self.down1 = SpaceDown(u0, u1)
        self.res1 = ResBlock(u1 + d1, u1, "unet.res1", te)
        self.down2 = SpaceDown(u1, u2)
        self.mid = ResBlock(u2 + d2, u2, "unet.mid", te)
        self.up1 = SpaceUp(u2, u1)
        self.res2 = ResBlock(2 * u1, u1, "unet.res2", te)
        self.up2 = SpaceUp(u1, u0)
        self.res3 = ResBlock(2 * u0, u0, "unet.res3", te)
        self.out = nn.Conv3d(u0, 1, (1, 3, 3), padding=(0, 1, 1))

    def forward(self, x, t, c32, c16, c8, s: Stream):
        emb = self.temb(timestep_embedding(t, self.temb_dim))
        h0 = self.res0(self.conv_in(torch.cat([x, c32], 1), s), s, emb)
        h1 = self.res1(torch.cat([self.down1(F.silu(h0)), c16], 1), s, emb)
        h2 = self.mid(torch.cat([self.down2(F.silu(h1)), c8], 1), s, emb)
        u1 = self.res2(torch.cat([self.up1(F.silu(h2)), h1], 1), s, emb)
        u0 = self.res3(torch.cat([self.up2(F.silu(u1)), h0], 1), s, emb)
        return self.out(F.silu(u0))


class Cdt(nn.Module):
    def __init__(self, cfg: CdtConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.context = ContextDecoder(cfg)
        self.denoiser = Denoiser(cfg)


def alphas_cumprod(n: int = TRAIN_STEPS, s: float = 0.008) -> torch.Tensor:
    """Cosine schedule (Nichol & Dhariwal 2021), betas clipped at 0.999; float64 [n]. Mirrored in
    src/video/schedule.ts."""
    steps = torch.arange(n + 1, dtype=torch.float64)
    f = torch.cos(((steps / n) + s) / (1 + s) * math.pi / 2) ** 2
    betas = (1 - f[1:] / f[:-1]).clamp(max=0.999)
    return torch.cumprod(1 - betas, dim=0)
