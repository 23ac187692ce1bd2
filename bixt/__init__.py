"""bixt: Bi-Directional Cross-Attention Transformers (Hiller, Ehinger, Drummond; NeurIPS 2024)."""

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

__version__ = "0.1.0"

__all__ = [
    "BiXT",
    "BiXTConfig",
    "BiXTEncoder",
    "EncoderOutput",
    "Intermediates",
    "__version__",
    "create_model",
    "from_pretrained",
    "list_models",
    "register_model",
]
