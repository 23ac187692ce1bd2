"""Hub-style save / load: PyTorchModelHubMixin's file layout, a filled model card, repo ids and push_to_hub (the Hub
itself replaced by local stand-ins: no network here), and directories saved before the card existed."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from engine_helpers import restore_threads, tiny_config, tiny_images  # noqa: F401 (autouse fixture)

import bixt
from bixt.bench.cost import count_flops
from bixt.engine.checkpoint import read_meta, resolve_checkpoint
from bixt.engine.run import fit
from bixt.models.model_card import training_summary

hub = pytest.importorskip("huggingface_hub")
hub_constants = pytest.importorskip("huggingface_hub.constants")


def small_model() -> bixt.BiXT:
    torch.manual_seed(0)
    model = bixt.create_model("bixt_ti_l64_p16", img_size=32, embed_dim=64, num_heads=2, depth=2, num_classes=4)
    torch.nn.init.normal_(model.head.fc.weight)
    return model.eval()


def same_outputs(a: torch.nn.Module, b: torch.nn.Module) -> None:
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(a.eval()(x), b.eval()(x), rtol=0, atol=0)


def test_layout_is_the_mixins_and_round_trips(tmp_path: Path) -> None:
    model = small_model()
    directory = model.save_pretrained(tmp_path / "m", name="tiny")
    assert sorted(p.name for p in directory.iterdir()) == sorted(
        [hub_constants.SAFETENSORS_SINGLE_FILE, hub_constants.CONFIG_NAME, "README.md"]
    )
    same_outputs(bixt.from_pretrained(directory), model)


def test_a_directory_saved_without_a_card_still_loads(tmp_path: Path) -> None:
    model = small_model()
    directory = model.save_pretrained(tmp_path / "old")
    (directory / "README.md").unlink()  # what save_pretrained wrote before model cards
    same_outputs(bixt.from_pretrained(directory), model)


def test_card_of_a_run_checkpoint_states_architecture_cost_data_and_metrics(tmp_path: Path) -> None:
    data = tiny_images()
    fit(tiny_config(str(tmp_path), "--run_name", "r"), train_set=data, eval_set=data)
    checkpoint = resolve_checkpoint(tmp_path / "r")
    model = bixt.from_pretrained(checkpoint)
    summary = training_summary(checkpoint)
    meta = read_meta(checkpoint)
    assert summary is not None and summary.metrics == meta["last_eval"] and summary.step == meta["step"]

    card = (model.save_pretrained(tmp_path / "card", name="tiny-run", training=summary) / "README.md").read_text()
    flops = count_flops(model, model.example_input(1))
    assert card.startswith("---\nlibrary_name: bixt\nlicense: apache-2.0\n")
    assert "# tiny-run" in card and "- architecture: `BiXT`" in card
    assert f"- parameters: {sum(p.numel() for p in model.parameters()):,}" in card
    assert f"- FLOPs: {flops / 1e9:.3f} G per sample at input 1x16x16" in card
    assert f"- data: {summary.data}" in card and f"- step: {meta['step']}" in card
    for key, value in meta["last_eval"].items():
        assert f"| {key} | {value:.4f} |" in card
    assert "arXiv:2402.12138" in card and '"num_latents": 4' in card
    assert training_summary(tmp_path / "card") is None  # not part of a run


def test_repo_ids_download_and_push_to_hub_uploads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    remote = tmp_path / "remote"  # stands for the Hub's storage of one repo
    uploads: list[dict] = []

    class FakeApi:
        def __init__(self, token: str | None = None) -> None:
            self.token = token

        def create_repo(self, repo_id: str, private: bool = False, exist_ok: bool = False) -> None:
            uploads.append(dict(created=repo_id, private=private, exist_ok=exist_ok))

        def upload_folder(self, repo_id: str, folder_path: str, commit_message: str):
            shutil.copytree(folder_path, remote)
            uploads.append(dict(repo_id=repo_id, files=sorted(p.name for p in Path(folder_path).iterdir())))
            return "https://huggingface.co/owner/tiny/commit/0"

    def fake_snapshot_download(repo_id: str, revision=None, cache_dir=None, allow_patterns=None) -> str:
        uploads.append(dict(downloaded=repo_id, revision=revision, allow_patterns=sorted(allow_patterns)))
        return str(remote)

    monkeypatch.setattr(hub, "HfApi", FakeApi)
    monkeypatch.setattr(hub, "snapshot_download", fake_snapshot_download)
    model = small_model()
    assert model.push_to_hub("owner/tiny", private=True) == "https://huggingface.co/owner/tiny/commit/0"
    loaded = bixt.from_pretrained("owner/tiny", revision="v1")
    same_outputs(loaded, model)
    assert uploads == [
        dict(created="owner/tiny", private=True, exist_ok=True),
        dict(repo_id="owner/tiny", files=["README.md", "config.json", "model.safetensors"]),
        dict(downloaded="owner/tiny", revision="v1", allow_patterns=["README.md", "config.json", "model.safetensors"]),
    ]
    with pytest.raises(ValueError, match="owner/name"):
        model.push_to_hub("not a repo id")
    with pytest.raises(FileNotFoundError, match="save_pretrained"):
        bixt.from_pretrained(tmp_path / "missing")
