"""A DP-T-style transformer denoiser for action chunks (Chi et al., 2023, "Diffusion Policy", transformer variant).

eps = f(x_t [B, 16, 2], t [B] int64, obs [B, 7]). Action tokens attend to themselves, then to two condition tokens
(timestep, observation); pre-LN residual branches with no adaLN gates: the timestep enters only through the memory.
Plain torch, exported as is; nothing is shaped for Ditto's engine.
"""

import math

import torch
from torch import nn


def mish(x: torch.Tensor) -> torch.Tensor:
    # Written out: ONNX has no Mish op before opset 18.
    return x * torch.tanh(nn.functional.softplus(x))


class Mish(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return mish(x)


def sinusoidal(t: torch.Tensor, dim: int) -> torch.Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / (half - 1))
    args = t.to(torch.float32)[:, None] * freqs[None, :]
    return torch.cat([torch.sin(args), torch.cos(args)], dim=-1)


class Attention(nn.Module):
    """Multi-head attention of queries x over keys/values m (m = x for self-attention)."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        h = self.heads
        q = self.q(x).reshape(b, n, h, d // h).transpose(1, 2)
        k = self.k(m).reshape(b, m.shape[1], h, d // h).transpose(1, 2)
        v = self.v(m).reshape(b, m.shape[1], h, d // h).transpose(1, 2)
        attn = torch.softmax(q @ k.transpose(-2, -1) * (d // h) ** -0.5, dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, d))


class SelfAttention(Attention):
    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return super().forward(x, x)


class Block(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.cross = Attention(dim, heads)
        self.norm3 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        x = x + self.cross(self.norm2(x), memory)
        x = x + self.mlp(self.norm3(x))
        return x


class PolicyDenoiser(nn.Module):
    def __init__(self, dim: int = 128, depth: int = 4, heads: int = 4, horizon: int = 16, action_dim: int = 2,
                 obs_dim: int = 7):
        super().__init__()
        self.dim = dim
        self.action_in = nn.Linear(action_dim, dim)
        self.action_pos = nn.Parameter(torch.zeros(1, horizon, dim))
        self.time_mlp = nn.Sequential(nn.Linear(dim, dim), Mish(), nn.Linear(dim, dim))
        self.obs_in = nn.Linear(obs_dim, dim)
        self.cond_pos = nn.Parameter(torch.zeros(1, 2, dim))
        self.cond_encoder = nn.Sequential(nn.Linear(dim, 4 * dim), Mish(), nn.Linear(4 * dim, dim))
        self.blocks = nn.ModuleList([Block(dim, heads) for _ in range(depth)])
        self.norm_out = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, action_dim)
        nn.init.normal_(self.action_pos, std=0.02)
        nn.init.normal_(self.cond_pos, std=0.02)

    def forward(self, x: torch.Tensor, t: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        time_token = self.time_mlp(sinusoidal(t, self.dim))[:, None, :]
        obs_token = self.obs_in(obs)[:, None, :]
        memory = self.cond_encoder(torch.cat([time_token, obs_token], dim=1) + self.cond_pos)
        h = self.action_in(x) + self.action_pos
        for block in self.blocks:
            h = block(h, memory)
        return self.head(self.norm_out(h))


class Schedule:
    """DDPM, squaredcos_cap_v2 betas (Nichol & Dhariwal, 2021), computed in float64 like the TypeScript port."""

    def __init__(self, train_steps: int = 100):
        self.T = train_steps
        f = lambda s: math.cos((s + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
        betas = [min(1 - f((i + 1) / train_steps) / f(i / train_steps), 0.999) for i in range(train_steps)]
        abar, prod = [], 1.0
        for b in betas:
            prod *= 1 - b
            abar.append(prod)
        self.betas = betas
        self.abar = abar


@torch.no_grad()
def sample(model, obs: torch.Tensor, sched: Schedule, steps: int, kind: str, noise: torch.Tensor,
           step_noise=None) -> torch.Tensor:
    """DDPM ancestral (kind='ddpm', steps must be T) or DDIM η=0 with leading spacing; x̂0 clipped to [-1, 1].

    step_noise(i) gives the ancestral noise for step i (tests pass recorded noise); default torch.randn.
    """
    x = noise.clone()
    T = sched.T
    if kind == "ddpm":
        times = list(range(T - 1, -1, -1))
    else:
        stride = T // steps
        times = [(steps - 1 - i) * stride for i in range(steps)]
    for i, t in enumerate(times):
        t_prev = times[i + 1] if i + 1 < len(times) else -1
        tt = torch.full((x.shape[0],), t, dtype=torch.long)
        eps = model(x, tt, obs)
        a_t = sched.abar[t]
        a_prev = sched.abar[t_prev] if t_prev >= 0 else 1.0
        x0 = ((x - math.sqrt(1 - a_t) * eps) / math.sqrt(a_t)).clamp(-1, 1)
        if kind == "ddpm":
            beta = 1 - a_t / a_prev
            c0 = math.sqrt(a_prev) * beta / (1 - a_t)
            ct = math.sqrt(1 - beta) * (1 - a_prev) / (1 - a_t)
            x = c0 * x0 + ct * x
            if t > 0:
                var = max((1 - a_prev) / (1 - a_t) * beta, 1e-20)
                z = step_noise(i) if step_noise is not None else torch.randn_like(x)
                x = x + math.sqrt(var) * z
        else:
            # η = 0; ε as predicted by the model (diffusers' DDIM with use_clipped_model_output=False).
            x = math.sqrt(a_prev) * x0 + math.sqrt(1 - a_prev) * eps
    return x


class ScheduledDenoiser:
    """The denoiser run under a static per-unit table m[s][u] (BAC's runtime, shared/specs/bac.md "Runtime").

    Units in forward order: block b's self-attention 3b, cross-attention 3b+1, MLP 3b+2. At step s a unit with
    m[s][u] = 1 (or no stored output yet) computes its branch on the current residual stream and stores it; otherwise
    the stored branch output is added as is. Called once per sampler step, in order; the reference the TypeScript
    schedule executor is checked against.
    """

    def __init__(self, model: PolicyDenoiser, table: list[list[int]]):
        self.model = model
        self.table = table
        self.step = 0
        self.stored: dict[int, torch.Tensor] = {}

    def branch(self, u: int, compute) -> torch.Tensor:
        if self.table[self.step][u] == 1 or u not in self.stored:
            self.stored[u] = compute()
        return self.stored[u]

    def __call__(self, x: torch.Tensor, t: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        m = self.model
        time_token = m.time_mlp(sinusoidal(t, m.dim))[:, None, :]
        obs_token = m.obs_in(obs)[:, None, :]
        memory = m.cond_encoder(torch.cat([time_token, obs_token], dim=1) + m.cond_pos)
        h = m.action_in(x) + m.action_pos
        for b, block in enumerate(m.blocks):
            h = h + self.branch(3 * b, lambda: block.attn(block.norm1(h)))
            h = h + self.branch(3 * b + 1, lambda: block.cross(block.norm2(h), memory))
            h = h + self.branch(3 * b + 2, lambda: block.mlp(block.norm3(h)))
        self.step += 1
        return m.head(m.norm_out(h))
