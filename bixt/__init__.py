"""bixt: Bi-Directional Cross-Attention Transformers (Hiller, Ehinger, Drummond; NeurIPS 2024)."""

import sys

from bixt._lazy import lazy_exports

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

# bixt.models registers every model in timm when timm imports; a program that imported timm first expects the
# names there right after `import bixt`.
if "timm" in sys.modules:
    import bixt.models  # noqa: F401
