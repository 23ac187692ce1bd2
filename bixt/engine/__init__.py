"""Training engine: typed run configs, the train / evaluate functions, checkpoints, DDP, logs.

``fit(parse_config(["-c", "configs/fashion-mnist.yaml"]))`` is what ``bixt train`` runs; ``train_one_epoch`` and
``evaluate`` are the plain functions it is built from.
"""

from bixt.engine.config import ConfigError, RunConfig, load_config, parse_config
from bixt.engine.evaluation import EvalReport, evaluate_checkpoint
from bixt.engine.optim import build_optimizer, param_groups
from bixt.engine.run import RunResult, fit
from bixt.engine.schedule import cosine_lr
from bixt.engine.train import NonFiniteLossError, evaluate, train_one_epoch

__all__ = [
    "ConfigError",
    "EvalReport",
    "NonFiniteLossError",
    "RunConfig",
    "RunResult",
    "build_optimizer",
    "cosine_lr",
    "evaluate",
    "evaluate_checkpoint",
    "fit",
    "load_config",
    "param_groups",
    "parse_config",
    "train_one_epoch",
]
