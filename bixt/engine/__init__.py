"""Training engine: typed run configs, the train / evaluate functions, checkpoints, DDP, logs.

``fit(parse_config(["-c", "configs/fashion-mnist.yaml"]))`` is what ``bixt train`` runs; ``train_one_epoch`` and
``evaluate`` are the plain functions it is built from. Names are imported on first use (bixt/_lazy.py), so that
``bixt train --help`` reads the config without importing torch.
"""

from bixt._lazy import lazy_exports

_EXPORTS = {
    "ConfigError": "bixt.engine.config",
    "RunConfig": "bixt.engine.config",
    "load_config": "bixt.engine.config",
    "parse_config": "bixt.engine.config",
    "EvalReport": "bixt.engine.evaluation",
    "evaluate_checkpoint": "bixt.engine.evaluation",
    "build_optimizer": "bixt.engine.optim",
    "param_groups": "bixt.engine.optim",
    "RunResult": "bixt.engine.run",
    "fit": "bixt.engine.run",
    "cosine_lr": "bixt.engine.schedule",
    "TASKS": "bixt.engine.tasks",
    "Task": "bixt.engine.tasks",
    "EvalSettings": "bixt.engine.train",
    "NonFiniteLossError": "bixt.engine.train",
    "StepSettings": "bixt.engine.train",
    "evaluate": "bixt.engine.train",
    "train_one_epoch": "bixt.engine.train",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = list(_EXPORTS)
