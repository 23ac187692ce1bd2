"""The initialisation scheme of BiXT (timm's 'jax' mode), applied by module name.

- every Linear: Xavier-uniform on the whole (possibly fused) weight; bias ~ N(0, 1e-6) inside MLPs, else 0;
- Linear layers under a module named ``head``: weight 0 and bias 0 (the classifier starts silent); a head with hidden
  layers, which the zeros would leave dead, defines ``reset_parameters`` and initialises itself after this pass;
- every Conv2d: LeCun-normal (truncated normal, fan-in), bias 0;
- learned latents: truncated normal, std 0.02, cut at +-2 (absolute);
- LayerNorm / BatchNorm keep PyTorch's defaults.
"""

from __future__ import annotations

import math

import torch
from torch import nn

# std of a standard normal truncated to [-2, 2]; dividing by it makes the truncated draw have the intended variance
_TRUNC_STD = 0.87962566103423978


def lecun_normal_(weight: torch.Tensor) -> torch.Tensor:
    fan_in = weight[0].numel()
    std = math.sqrt(1.0 / fan_in) / _TRUNC_STD
    return nn.init.trunc_normal_(weight, std=std, a=-2 * std, b=2 * std)


def init_latents_(latents: torch.Tensor) -> torch.Tensor:
    if latents.is_meta:
        return latents
    return nn.init.trunc_normal_(latents, std=0.02, a=-2.0, b=2.0)


def init_weights_jax(model: nn.Module) -> None:
    """Initialise every Linear and Conv2d of `model` in place (latents are the caller's, see `init_latents_`), then
    let ``model.head`` finish its own initialisation if it has one (``reset_parameters``)."""
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear | nn.Conv2d) and module.weight.is_meta:
            continue  # a shapes-only model (cost counting) has no values to set, and random fills on meta are slow
        is_head = name == "head" or name.startswith("head.") or ".head." in name
        if isinstance(module, nn.Linear):
            if is_head:
                nn.init.zeros_(module.weight)
            else:
                nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                if "mlp" in name and not is_head:
                    nn.init.normal_(module.bias, std=1e-6)
                else:
                    nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Conv2d):
            lecun_normal_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    head = getattr(model, "head", None)
    if isinstance(head, nn.Module) and hasattr(head, "reset_parameters"):
        head.reset_parameters()
