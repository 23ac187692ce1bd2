"""bixt: Bi-Directional Cross-Attention Transformers (Hiller, Ehinger, Drummond; NeurIPS 2024)."""

import logging

from bixt._lazy import after_import, lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "count_activations": "bixt.bench.cost",
    "count_cost": "bixt.bench.cost",
    "count_flops": "bixt.bench.cost",
    "load_official": "bixt.convert",
    "attention_path": "bixt.layers.attention_paths",
    "resolved_attention_path": "bixt.layers.attention_paths",
    "set_attention_path": "bixt.layers.attention_paths",
    "set_value_checks": "bixt.value_checks",
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


def _register_in_timm() -> None:
    try:
        from bixt.timm_interop import register_in_timm  # imports timm: only once timm is imported anyway

        register_in_timm()
    except Exception as err:  # a broken timm install must not break bixt
        logging.getLogger(__name__).warning("timm imported, but bixt could not register its models there (%s)", err)


# bixt's image classifiers appear in timm once timm is imported; timm itself is not imported here
after_import("timm", _register_in_timm)
