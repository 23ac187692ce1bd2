"""Load the authors' published checkpoints (the official timm-based layout, SPEC 5) into this project's models.

Official key                                           -> this project's key
latents                                                -> encoder.latents
patch_embed.proj.{weight,bias}                         -> tokenizer.patch_embed.proj.*           (16x16 patches)
patch_embed.proj.{2k}.0.weight / .{2k}.1.*             -> tokenizer.patch_embed.stages.{k}.conv / .norm (conv stem)
fourier_pos_encode.token_projection.*                  -> tokenizer.pos_embed.proj.*
fourier_pos_encode.pos                                 -> (not stored: recomputed; checked to match when present)
blocks.{i}.self_attention_latents.*                    -> encoder.layers.{i}.latent_block.*
blocks.{i}.cross_attention_latents_token.*             -> encoder.layers.{i}.cross_block.*
    ..._lat / ..._pat, attn.rv_patches                 ->     ..._latents / ..._tokens, attn.rv_tokens
fc_norm.*, head.*                                      -> head.norm.*, head.fc.*
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from bixt.fileio import DamagedFileError
from bixt.layers.pos_embed import fourier_grid_features_2d
from bixt.models.serialization import load_weights_file

_WRAPPER_PREFIXES = ("module.", "_orig_mod.")

_RULES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^latents$"), "encoder.latents"),
    (re.compile(r"^patch_embed\.proj\.(weight|bias)$"), r"tokenizer.patch_embed.proj.\1"),
    (re.compile(r"^fourier_pos_encode\.token_projection\.(.+)$"), r"tokenizer.pos_embed.proj.\1"),
    (re.compile(r"^blocks\.(\d+)\.self_attention_latents\.(.+)$"), r"encoder.layers.\1.latent_block.\2"),
    (re.compile(r"^blocks\.(\d+)\.cross_attention_latents_token\.(.+)$"), r"encoder.layers.\1.cross_block.\2"),
    (re.compile(r"^fc_norm\.(.+)$"), r"head.norm.\1"),
    (re.compile(r"^head\.(.+)$"), r"head.fc.\1"),
]
_CONV_STEM = re.compile(r"^patch_embed\.proj\.(\d+)\.([01])\.(.+)$")
_POS_BUFFER = "fourier_pos_encode.pos"


def _rename_cross(key: str) -> str:
    # norm1_lat -> norm1_latents, mlp_pat -> mlp_tokens, ls2_pat -> ls2_tokens, attn.proj_lat -> attn.proj_latents ...
    key = re.sub(r"_lat(?=\.)", "_latents", key)
    key = re.sub(r"_pat(?=\.)", "_tokens", key)
    return key.replace("attn.rv_patches.", "attn.rv_tokens.")


def official_key_to_bixt(key: str) -> str | None:
    """This project's name for an official key; None for keys that are not stored (the PE buffer)."""
    if key == _POS_BUFFER:
        return None
    stem = _CONV_STEM.match(key)
    if stem:
        index, part, rest = stem.groups()
        if int(index) % 2:
            raise ValueError(f"unexpected conv-stem key {key!r}: odd indices are GELUs and hold no weights")
        return f"tokenizer.patch_embed.stages.{int(index) // 2}.{'conv' if part == '0' else 'norm'}.{rest}"
    for pattern, replacement in _RULES:
        if pattern.match(key):
            new = pattern.sub(replacement, key)
            return _rename_cross(new) if ".cross_block." in new else new
    raise ValueError(f"unexpected key {key!r} in the official checkpoint")


def _strip_wrappers(key: str) -> str:
    # DDP adds "module.", torch.compile "_orig_mod."; either, both, or in either order.
    changed = True
    while changed:
        changed = False
        for prefix in _WRAPPER_PREFIXES:
            if key.startswith(prefix):
                key, changed = key[len(prefix) :], True
    return key


def read_official_checkpoint(path: str | os.PathLike, *, trust_pickle: bool = False) -> dict[str, torch.Tensor]:
    """The state dict inside an official checkpoint file (a timm ``.pth.tar`` dict or a bare state dict).

    Without `trust_pickle`, the file is read with ``weights_only=True`` (only tensors and plain containers, plus the
    ``argparse.Namespace`` that timm stores as ``args``). Arbitrary pickled objects need ``trust_pickle=True``: only
    pass it for files whose origin you trust, since unpickling can run code.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if path.suffix == ".safetensors":
        return load_weights_file(path, sha256=None)
    try:
        if trust_pickle:
            obj = torch.load(path, map_location="cpu", weights_only=False)
        else:
            with torch.serialization.safe_globals([argparse.Namespace]):
                obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises UnpicklingError, RuntimeError, EOFError, IndexError... by what it met
        refused = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
        if refused and not trust_pickle:
            # A whole file that holds objects besides tensors: readable, but only by running its pickle.
            raise ValueError(
                f"{path} holds pickled objects that weights_only=True refuses ({refused[1]}). If you trust the "
                "file's origin, pass trust_pickle=True to unpickle it fully (this can execute code)."
            ) from err
        raise DamagedFileError(
            f"{path} is damaged or not a checkpoint written by torch.save ({type(err).__name__}: "
            f"{str(err).splitlines()[0][:200] if str(err) else 'no detail'}); download it again"
        ) from err
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model", "state_dict_ema"):
            if key in obj and isinstance(obj[key], Mapping):
                return dict(obj[key])
        if all(isinstance(v, torch.Tensor) for v in obj.values()):
            return dict(obj)
    raise ValueError(f"{path} holds no state dict (expected a dict with 'state_dict' or a dict of tensors)")


def convert_official_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename an official-layout state dict to this project's layout (the PE buffer is dropped)."""
    converted: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        new = official_key_to_bixt(_strip_wrappers(key))
        if new is not None:
            converted[new] = value
    return converted


def _check_pos_buffer(state_dict: Mapping[str, torch.Tensor]) -> None:
    # The official fixed encoding stores its Fourier grid; ours recomputes it. A stored grid that differs from the
    # function would mean a different encoding, which loading must not hide.
    pos = next((v for k, v in state_dict.items() if _strip_wrappers(k) == _POS_BUFFER), None)
    if pos is None:
        return
    channels, height, width = pos.shape
    expected = fourier_grid_features_2d(height, width, num_feats=channels // 2, dtype=pos.dtype)
    if not torch.allclose(pos, expected, atol=1e-5):
        raise ValueError(f"{_POS_BUFFER} does not match the 2-D Fourier encoding this model recomputes")


def load_official(
    model: nn.Module,
    source: str | os.PathLike | Mapping[str, torch.Tensor],
    *,
    trust_pickle: bool = False,
) -> nn.Module:
    """Load official BiXT weights into `model` (built with the matching registry name) and return it.

    source: a checkpoint file (``.pth``/``.pth.tar`` from timm, or ``.safetensors``) or a state dict in the official
    layout. Raises ValueError naming every missing or unexpected key, or mismatched shape.
    """
    if isinstance(source, Mapping):
        state_dict = dict(source)
    else:
        state_dict = read_official_checkpoint(source, trust_pickle=trust_pickle)
    _check_pos_buffer(state_dict)
    converted = convert_official_state_dict(state_dict)
    own = model.state_dict()
    missing = sorted(set(own) - set(converted))
    unexpected = sorted(set(converted) - set(own))
    mismatched = [
        f"{k}: checkpoint {tuple(converted[k].shape)} vs model {tuple(own[k].shape)}"
        for k in sorted(set(own) & set(converted))
        if converted[k].shape != own[k].shape
    ]
    problems = []
    if missing:
        problems.append(f"missing keys (in the model, not the checkpoint): {missing}")
    if unexpected:
        problems.append(f"unexpected keys (in the checkpoint, not the model): {unexpected}")
    if mismatched:
        problems.append(f"shape mismatches: {mismatched}")
    if problems:
        raise ValueError(
            "the official checkpoint does not fit this model; was it built with the matching registry name "
            "(e.g. d13, ed256LS, conv stem)?\n" + "\n".join(problems)
        )
    model.load_state_dict(converted)
    return model
