"""bixt: Bi-Directional Cross-Attention Transformers (Hiller, Ehinger, Drummond; NeurIPS 2024)."""

from bixt._lazy import lazy_exports
from bixt.timm_hook import register_when_timm_imports

__version__ = "0.1.0"

_EXPORTS = {
    "count_activations": "bixt.bench.cost",
    "count_cost": "bixt.bench.cost",
    "count_flops": "bixt.bench.cost",
    "load_official": "bixt.convert",
    "attention_path": "bixt.layers.attend",
    "set_attention_path": "bixt.layers.attend",
    **dict.fromkeys(
        (
            "BiXT",
            "BiXTConfig",
            "BiXTEncoder",
            "EncoderOutput",
            "Intermediates",
            "create_model",
            "from_pretrained",
            "list_models",
            "register_model",
        ),
        "bixt.models",
    ),
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = ["__version__", *_EXPORTS]

# bixt's image classifiers appear in timm once timm is imported; timm itself is not imported here (bixt.timm_hook)
register_when_timm_imports()
