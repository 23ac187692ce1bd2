"""bixt: Bi-Directional Cross-Attention Transformers (Hiller, Ehinger, Drummond; NeurIPS 2024)."""

from bixt.bench.cost import count_activations, count_cost, count_flops
from bixt.convert import load_official
from bixt.layers.attend import attention_path, set_attention_path
from bixt.models import (
    BiXT,
    BiXTConfig,
    BiXTEncoder,
    EncoderOutput,
    Intermediates,
    create_model,
    from_pretrained,
    list_models,
    register_model,
)
from bixt.timm_interop import register_when_timm_imports

__version__ = "0.1.0"

register_when_timm_imports()

__all__ = [
    "BiXT",
    "BiXTConfig",
    "BiXTEncoder",
    "EncoderOutput",
    "Intermediates",
    "__version__",
    "attention_path",
    "count_activations",
    "count_cost",
    "count_flops",
    "create_model",
    "from_pretrained",
    "list_models",
    "load_official",
    "register_model",
    "set_attention_path",
]
