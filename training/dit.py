"""A small class-conditional DiT with adaLN-Zero blocks (Peebles & Xie, 2023), written for export to ONNX.

Written the way a user would write their own model: nothing here is shaped for Ditto's engine.
Shapes: B batch, T = 49 tokens (7x7 patches of 4x4), D hidden width.
"""

import math

import torch
from torch import nn


def sincos_pos_embed(dim: int, grid: int) -> torch.Tensor:
    """Fixed 2-D sine-cosine position embedding, [grid*grid, dim] (as in MAE / DiT)."""
    coords = torch.arange(grid, dtype=torch.float64)
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    quarter = dim // 4
    omega = 1.0 / (10000 ** (torch.arange(quarter, dtype=torch.float64) / quarter))
    parts = []
    for pos in (yy.reshape(-1), xx.reshape(-1)):
        angles = pos[:, None] * omega[None, :]
        parts += [torch.sin(angles), torch.cos(angles)]
    return torch.cat(parts, dim=1).float()


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


class TimestepEmbedder(nn.Module):
    """t in [0, 1] -> [B, D] via sinusoidal features of 1000*t and a 2-layer MLP."""

    def __init__(self, dim: int, freq_dim: int = 256):
        super().__init__()
        self.freq_dim = freq_dim
        self.mlp = nn.Sequential(nn.Linear(freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        half = self.freq_dim // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
        args = (t * 1000.0)[:, None] * freqs[None, :]
        return self.mlp(torch.cat([torch.cos(args), torch.sin(args)], dim=-1))


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        qkv = self.qkv(x).reshape(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # [B, H, T, d/H]
        attn = torch.softmax(q @ k.transpose(-2, -1) * (d // self.heads) ** -0.5, dim=-1)
        out = (attn @ v).transpose(1, 2).reshape(b, t, d)
        return self.proj(out)


class DiTBlock(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: float):
        super().__init__()
        # Affine LayerNorms: torch 1.13 exports a non-affine LayerNorm at opset 17 with an empty scale
        # input that ONNX Runtime refuses. The affine weights start at 1/0, so adaLN-Zero is unchanged.
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, dim))
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift1, scale1, gate1, shift2, scale2, gate2 = self.adaLN_modulation(c).chunk(6, dim=1)
        x = x + gate1.unsqueeze(1) * self.attn(modulate(self.norm1(x), shift1, scale1))
        x = x + gate2.unsqueeze(1) * self.mlp(modulate(self.norm2(x), shift2, scale2))
        return x


class FinalLayer(nn.Module):
    def __init__(self, dim: int, patch: int, channels: int):
        super().__init__()
        self.norm_final = nn.LayerNorm(dim, eps=1e-6)
        self.linear = nn.Linear(dim, patch * patch * channels)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 2 * dim))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=1)
        return self.linear(modulate(self.norm_final(x), shift, scale))


class DiT(nn.Module):
    """Predicts the flow-matching velocity v = noise - x0 for x_t = (1 - t) x0 + t noise."""

    def __init__(self, image_size=28, channels=1, patch=4, dim=256, depth=12, heads=4, mlp_ratio=4.0, num_classes=10):
        super().__init__()
        self.channels, self.patch, self.grid = channels, patch, image_size // patch
        self.num_classes = num_classes
        self.x_embedder = nn.Conv2d(channels, dim, kernel_size=patch, stride=patch)
        self.register_buffer("pos_embed", sincos_pos_embed(dim, self.grid).unsqueeze(0))
        self.t_embedder = TimestepEmbedder(dim)
        self.y_embedder = nn.Embedding(num_classes + 1, dim)  # index num_classes = null class (CFG)
        self.blocks = nn.ModuleList(DiTBlock(dim, heads, mlp_ratio) for _ in range(depth))
        self.final_layer = FinalLayer(dim, patch, channels)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        w = self.x_embedder.weight.data
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.zeros_(self.x_embedder.bias)
        nn.init.normal_(self.y_embedder.weight, std=0.02)
        for lin in (self.t_embedder.mlp[0], self.t_embedder.mlp[2]):
            nn.init.normal_(lin.weight, std=0.02)
        # adaLN-Zero: every block starts as the identity, the head outputs zero.
        for block in self.blocks:
            nn.init.zeros_(block.adaLN_modulation[-1].weight)
            nn.init.zeros_(block.adaLN_modulation[-1].bias)
        nn.init.zeros_(self.final_layer.adaLN_modulation[-1].weight)
        nn.init.zeros_(self.final_layer.adaLN_modulation[-1].bias)
        nn.init.zeros_(self.final_layer.linear.weight)
        nn.init.zeros_(self.final_layer.linear.bias)

    def unpatchify(self, x: torch.Tensor) -> torch.Tensor:
        b, p, g, ch = x.shape[0], self.patch, self.grid, self.channels
        x = x.reshape(b, g, g, p, p, ch)  # [B, gh, gw, p, p, C]
        return x.permute(0, 5, 1, 3, 2, 4).reshape(b, ch, g * p, g * p)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.x_embedder(x).flatten(2).transpose(1, 2) + self.pos_embed  # [B, T, D]
        c = self.t_embedder(t) + self.y_embedder(y)  # [B, D]
        for block in self.blocks:
            h = block(h, c)
        return self.unpatchify(self.final_layer(h, c))


@torch.no_grad()
def sample_euler(model: DiT, y: torch.Tensor, steps: int, cfg: float, generator: torch.Generator, shift: float = 1.0):
    """Flow-matching Euler from t = 1 (noise) to t = 0 with classifier-free guidance."""
    b = y.shape[0]
    x = torch.randn(b, model.channels, 28, 28, generator=generator)
    ts = torch.linspace(1.0, 0.0, steps + 1)
    ts = shift * ts / (1 + (shift - 1) * ts)  # SD3-style time shift; identity at shift = 1
    null = torch.full_like(y, model.num_classes)
    for i in range(steps):
        t = ts[i].expand(b)
        v = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([y, null]))
        v_cond, v_uncond = v.chunk(2)
        x = x + (ts[i + 1] - ts[i]) * (v_uncond + cfg * (v_cond - v_uncond))
    return x.clamp(-1, 1)
