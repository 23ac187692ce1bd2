"""An independent, functional BiXT forward pass over a state dict in the *official* layout (SPEC 1 and 5).

Written straight from the specification with plain torch.nn.functional calls and the official key names, sharing no
code with the package. It is anchored by the reference vectors made with the authors' code (see test_official.py),
then used to check the converter and the model on variants those vectors do not cover (LayerScale, conv stem, stride
4, d13, other resolutions).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

EPS = 1e-6


@dataclass
class OfficialSpec:
    embed_dim: int = 64
    num_heads: int = 2
    depth: int = 3
    num_latents: int = 16
    num_classes: int = 10
    in_chans: int = 3
    tokenizer: str = "patch16"  # patch16 | patch16_s8 | patch16_s4 | conv16 | conv8 | conv4
    layer_scale: bool = False
    pos_buffer_grid: int | None = None  # grid size of the stored Fourier buffer; None = adaptive (no buffer)


def _xcit_fourier(height: int, width: int, hidden: int = 32) -> torch.Tensor:
    # The XCiT formulation: cumulative sums over a mask of ones, normalised by the last value.
    ones = torch.ones(1, height, width)
    y = ones.cumsum(1)
    x = ones.cumsum(2)
    y = y / (y[:, -1:, :] + EPS) * 2 * math.pi
    x = x / (x[:, :, -1:] + EPS) * 2 * math.pi
    dim_t = torch.arange(hidden, dtype=torch.float32)
    dim_t = 10000 ** (2 * (dim_t // 2) / hidden)
    px = x[:, :, :, None] / dim_t
    py = y[:, :, :, None] / dim_t
    px = torch.stack((px[:, :, :, 0::2].sin(), px[:, :, :, 1::2].cos()), dim=4).flatten(3)
    py = torch.stack((py[:, :, :, 0::2].sin(), py[:, :, :, 1::2].cos()), dim=4).flatten(3)
    return torch.cat((py, px), dim=3).permute(0, 3, 1, 2)[0].contiguous()  # (2*hidden, h, w)


def official_state_dict(spec: OfficialSpec, seed: int = 0) -> dict[str, torch.Tensor]:
    """A random state dict with exactly the official keys and shapes for `spec`."""
    g = torch.Generator().manual_seed(seed)
    d, hidden = spec.embed_dim, 4 * spec.embed_dim
    shapes: dict[str, tuple[int, ...]] = {"latents": (1, spec.num_latents, d)}
    if spec.tokenizer.startswith("patch"):
        shapes["patch_embed.proj.weight"] = (d, spec.in_chans, 16, 16)
        shapes["patch_embed.proj.bias"] = (d,)
    else:
        stages = {"conv16": 4, "conv8": 3, "conv4": 2}[spec.tokenizer]
        widths = [spec.in_chans] + [d // 2**k for k in range(stages - 1, -1, -1)]
        for s in range(stages):
            shapes[f"patch_embed.proj.{2 * s}.0.weight"] = (widths[s + 1], widths[s], 3, 3)
            for name in ("weight", "bias", "running_mean", "running_var"):
                shapes[f"patch_embed.proj.{2 * s}.1.{name}"] = (widths[s + 1],)
    shapes["fourier_pos_encode.token_projection.weight"] = (d, 64, 1, 1)
    shapes["fourier_pos_encode.token_projection.bias"] = (d,)

    def linear(prefix: str, n_out: int, n_in: int) -> None:
        shapes[prefix + ".weight"] = (n_out, n_in)
        shapes[prefix + ".bias"] = (n_out,)

    def norm(prefix: str) -> None:
        shapes[prefix + ".weight"] = (d,)
        shapes[prefix + ".bias"] = (d,)

    for i in range(spec.depth):
        sa = f"blocks.{i}.self_attention_latents."
        norm(sa + "norm1")
        linear(sa + "attn.qkv", 3 * d, d)
        linear(sa + "attn.proj", d, d)
        norm(sa + "norm2")
        linear(sa + "mlp.fc1", hidden, d)
        linear(sa + "mlp.fc2", d, hidden)
        ca = f"blocks.{i}.cross_attention_latents_token."
        last = i == spec.depth - 1
        norm(ca + "norm1_lat")
        norm(ca + "norm1_pat")
        if last:
            linear(ca + "attn.r_latents", d, d)
        else:
            linear(ca + "attn.rv_latents", 2 * d, d)
            linear(ca + "attn.proj_pat", d, d)
            norm(ca + "norm2_pat")
            linear(ca + "mlp_pat.fc1", hidden, d)
            linear(ca + "mlp_pat.fc2", d, hidden)
        linear(ca + "attn.rv_patches", 2 * d, d)
        linear(ca + "attn.proj_lat", d, d)
        norm(ca + "norm2_lat")
        linear(ca + "mlp_lat.fc1", hidden, d)
        linear(ca + "mlp_lat.fc2", d, hidden)
        if spec.layer_scale:
            for name in ["ls1", "ls2"]:
                shapes[sa + name + ".gamma"] = (d,)
            for name in ["ls1_lat", "ls2_lat"] + ([] if last else ["ls1_pat", "ls2_pat"]):
                shapes[ca + name + ".gamma"] = (d,)
    norm("fc_norm")
    linear("head", spec.num_classes, d)

    state = {k: torch.randn(shape, generator=g) * 0.05 for k, shape in shapes.items()}
    for k in list(state):  # keep norms near identity and BN variances positive so activations stay sane
        if k.endswith(".weight") and state[k].ndim == 1:
            state[k] = state[k] + 1.0
        if k.endswith("running_var"):
            state[k] = state[k].abs() + 0.5
            # each BatchNorm also stores its update count
            state[k.replace("running_var", "num_batches_tracked")] = torch.tensor(100)
    if spec.pos_buffer_grid is not None:
        state["fourier_pos_encode.pos"] = _xcit_fourier(spec.pos_buffer_grid, spec.pos_buffer_grid)
    return state


def _heads(x: torch.Tensor, parts: int, h: int) -> list[torch.Tensor]:
    b, n, c = x.shape
    x = x.reshape(b, n, parts, h, c // (parts * h)).permute(2, 0, 3, 1, 4)
    return list(x)


def _merge(x: torch.Tensor) -> torch.Tensor:
    b, h, n, d = x.shape
    return x.permute(0, 2, 1, 3).reshape(b, n, h * d)


def official_forward(
    sd: dict[str, torch.Tensor], x: torch.Tensor, spec: OfficialSpec
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(latents, pre_logits, logits) of the official model with weights `sd`, eval mode."""
    d, h = spec.embed_dim, spec.num_heads
    scale = (d // h) ** -0.5

    def ln(t: torch.Tensor, p: str) -> torch.Tensor:
        return F.layer_norm(t, (d,), sd[p + ".weight"], sd[p + ".bias"], EPS)

    def lin(t: torch.Tensor, p: str) -> torch.Tensor:
        return F.linear(t, sd[p + ".weight"], sd.get(p + ".bias"))

    def mlp(t: torch.Tensor, p: str) -> torch.Tensor:
        return lin(F.gelu(lin(t, p + ".fc1")), p + ".fc2")

    def ls(t: torch.Tensor, p: str) -> torch.Tensor:
        return t * sd[p + ".gamma"] if p + ".gamma" in sd else t

    if spec.tokenizer.startswith("patch"):
        stride = {"patch16": 16, "patch16_s8": 8, "patch16_s4": 4}[spec.tokenizer]
        feats = F.conv2d(
            x, sd["patch_embed.proj.weight"], sd["patch_embed.proj.bias"], stride, {16: 0, 8: 4, 4: 6}[stride]
        )
    else:
        feats, s = x, 0
        while f"patch_embed.proj.{2 * s}.0.weight" in sd:
            if s:
                feats = F.gelu(feats)
            p = f"patch_embed.proj.{2 * s}."
            feats = F.conv2d(feats, sd[p + "0.weight"], None, 2, 1)
            feats = F.batch_norm(
                feats,
                sd[p + "1.running_mean"],
                sd[p + "1.running_var"],
                sd[p + "1.weight"],
                sd[p + "1.bias"],
                False,
                0.1,
                1e-5,
            )
            s += 1
    gh, gw = feats.shape[-2:]
    pos = sd.get("fourier_pos_encode.pos")
    if pos is None or pos.shape[-2:] != (gh, gw):
        pos = _xcit_fourier(gh, gw)
    pe = F.conv2d(
        pos[None], sd["fourier_pos_encode.token_projection.weight"], sd["fourier_pos_encode.token_projection.bias"]
    )
    tokens = feats.flatten(2).transpose(1, 2) + pe.flatten(2).transpose(1, 2)
    latents = sd["latents"]

    for i in range(spec.depth):
        ca = f"blocks.{i}.cross_attention_latents_token."
        lat_n, tok_n = ln(latents, ca + "norm1_lat"), ln(tokens, ca + "norm1_pat")
        k_tok, v_tok = _heads(lin(tok_n, ca + "attn.rv_patches"), 2, h)
        if ca + "attn.r_latents.weight" in sd:  # one-sided
            (q_lat,) = _heads(lin(lat_n, ca + "attn.r_latents"), 1, h)
            attn = (q_lat @ k_tok.transpose(-2, -1) * scale).softmax(-1)
            latents = latents + ls(lin(_merge(attn @ v_tok), ca + "attn.proj_lat"), ca + "ls1_lat")
            latents = latents + ls(mlp(ln(latents, ca + "norm2_lat"), ca + "mlp_lat"), ca + "ls2_lat")
        else:
            r_lat, v_lat = _heads(lin(lat_n, ca + "attn.rv_latents"), 2, h)
            sim = r_lat @ k_tok.transpose(-2, -1) * scale
            d_lat = lin(_merge(sim.softmax(-1) @ v_tok), ca + "attn.proj_lat")
            d_tok = lin(_merge(sim.transpose(-2, -1).softmax(-1) @ v_lat), ca + "attn.proj_pat")
            latents = latents + ls(d_lat, ca + "ls1_lat")
            latents = latents + ls(mlp(ln(latents, ca + "norm2_lat"), ca + "mlp_lat"), ca + "ls2_lat")
            tokens = tokens + ls(d_tok, ca + "ls1_pat")
            tokens = tokens + ls(mlp(ln(tokens, ca + "norm2_pat"), ca + "mlp_pat"), ca + "ls2_pat")
        sa = f"blocks.{i}.self_attention_latents."
        q, k, v = _heads(lin(ln(latents, sa + "norm1"), sa + "attn.qkv"), 3, h)
        attn = (q @ k.transpose(-2, -1) * scale).softmax(-1)
        latents = latents + ls(lin(_merge(attn @ v), sa + "attn.proj"), sa + "ls1")
        latents = latents + ls(mlp(ln(latents, sa + "norm2"), sa + "mlp"), sa + "ls2")

    latents = latents.expand(x.shape[0], -1, -1)
    pre_logits = ln(latents.mean(1), "fc_norm")
    return latents, pre_logits, lin(pre_logits, "head")
