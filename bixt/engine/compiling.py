"""``compile: true``: torch.compile of the training model, with a fallback to eager that says why.

Compilation happens at the first call (and again for each new input shape). Where it fails, for instance when
inductor finds no working C++ compiler on a CPU machine or meets an op it cannot trace, the run does not stop: the
reason is printed once and the model runs eagerly from then on. Only compiler errors (``TorchDynamoException``)
fall back; an error of the model itself is raised as it would be without compiling. Compilation that fails later,
in the first backward pass, is not caught (the forward result is already in use).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch._dynamo.exc import TorchDynamoException


class CompiledWithFallback(nn.Module):
    """``torch.compile(module)``, or `module` itself once compiling has failed. Calls, ``train()`` / ``eval()`` and
    ``no_sync()`` (DDP) go to `module`; its parameters are this wrapper's."""

    def __init__(self, module: nn.Module, *, log: Callable[[str], None] = print) -> None:
        super().__init__()
        self.module = module
        # Kept out of the submodules (the compiled wrapper shares `module`'s parameters; registering it would list
        # them twice in state_dict).
        self.__dict__["compiled"] = torch.compile(module)
        self.failure: str | None = None
        self._log = log

    def forward(self, *args, **kwargs):
        if self.failure is None:
            try:
                return self.compiled(*args, **kwargs)
            except TorchDynamoException as error:
                first_line = (str(error).strip().splitlines() or [""])[0]
                self.failure = f"{type(error).__name__}: {first_line}"
                self._log(f"torch.compile failed ({self.failure}); running the model eagerly")
        return self.module(*args, **kwargs)

    def no_sync(self):
        return self.module.no_sync()
