"""The Hugging Face Hub for `save_pretrained` directories: load from a repo id, push a model to one.

The layout is that of huggingface_hub's PyTorchModelHubMixin (``model.safetensors``, ``config.json``, ``README.md``
model card); config.json keeps this project's format (`bixt.models.serialization`), so a directory saved before the
Hub existed loads unchanged. huggingface_hub is optional (``pip install 'bixt[hub]'``) and imported only for the Hub.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from torch import nn

from bixt.models.model_card import CARD_NAME, TrainingSummary
from bixt.models.serialization import MODEL_CONFIG_NAME, WEIGHTS_NAME

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def _hub():
    try:
        import huggingface_hub
    except ImportError as err:
        raise ImportError("loading from or pushing to the Hugging Face Hub needs: pip install 'bixt[hub]'") from err
    return huggingface_hub


def resolve_pretrained_dir(
    source: str | os.PathLike, *, revision: str | None = None, cache_dir: str | os.PathLike | None = None
) -> Path:
    """A local save_pretrained directory for `source`: the path itself, or a Hub repo id ("owner/name") downloaded
    into huggingface_hub's cache (only config.json, model.safetensors and the card)."""
    path = Path(source)
    if path.exists() or not _REPO_ID.match(str(source)):
        return path
    local = _hub().snapshot_download(
        repo_id=str(source),
        revision=revision,
        cache_dir=cache_dir,
        allow_patterns=[MODEL_CONFIG_NAME, WEIGHTS_NAME, CARD_NAME],
    )
    return Path(local)


def push_to_hub(
    model: nn.Module,
    repo_id: str,
    *,
    name: str | None = None,
    training: TrainingSummary | None = None,
    private: bool = False,
    token: str | None = None,
    commit_message: str = "Upload bixt model",
) -> str:
    """Save `model` (weights, config, card) into a temporary directory and upload it to `repo_id` (created if
    missing). Returns the commit URL."""
    if not _REPO_ID.match(repo_id):
        raise ValueError(f"repo_id must look like 'owner/name', got {repo_id!r}")
    hub = _hub()
    api = hub.HfApi(token=token)
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp, name=name, training=training)
        api.create_repo(repo_id, private=private, exist_ok=True)
        commit = api.upload_folder(repo_id=repo_id, folder_path=tmp, commit_message=commit_message)
    return str(getattr(commit, "commit_url", commit))
