"""Models: the BiXT encoder, the image classifier, the registry and the model zoo."""

from bixt.models import zoo as _zoo  # noqa: F401  (registers the published models)
from bixt.models import zoo_tasks_and_baselines as _zoo_tasks_and_baselines  # noqa: F401  (registers them)
from bixt.models.bixt import BiXT, BiXTConfig
from bixt.models.encoder import BiXTEncoder, EncoderOutput, Intermediates
from bixt.models.registry import create_model, list_models, register_model
from bixt.models.serialization import from_pretrained

__all__ = [
    "BiXT",
    "BiXTConfig",
    "BiXTEncoder",
    "EncoderOutput",
    "Intermediates",
    "create_model",
    "from_pretrained",
    "list_models",
    "register_model",
]
