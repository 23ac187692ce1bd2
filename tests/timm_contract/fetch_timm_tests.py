"""Put timm's own model tests (tests/test_models.py of the installed timm version's source distribution) here.

The file is taken unmodified except for two filter-list entries that put bixt where timm lists its own transformer
families: the module ``timm_interop`` (where bixt registers its entrypoints) in FEAT_INTER_FILTERS (models with
timm's forward_intermediates / features_only getter) and ``bixt_*`` in NON_STD_FILTERS (models whose
forward_features is not an NCHW map, like ``vit_*``). The conftest beside it keeps only bixt models.

Usage: python tests/timm_contract/fetch_timm_tests.py   (downloads the sdist with pip; does nothing if up to date)
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
import tempfile
from importlib.metadata import version
from pathlib import Path

TARGET = Path(__file__).resolve().parent / "test_models.py"
HEADER = "# timm {version} tests/test_models.py; bixt added to two filter lists by fetch_timm_tests.py beside it\n"
# (anchor in timm's file, line inserted after it)
INSERTIONS = (
    ("FEAT_INTER_FILTERS = [\n", "    'timm_interop',  # bixt\n"),
    ("NON_STD_FILTERS = [\n", "    'bixt_*',\n"),
)


def add_bixt(source: str) -> str:
    for anchor, line in INSERTIONS:
        if source.count(anchor) != 1:
            raise SystemExit(f"timm's test_models.py changed: expected the line {anchor.strip()!r} exactly once")
        source = source.replace(anchor, anchor + line)
    return source


def download_test_models(version: str) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                f"timm=={version}",
                "--no-binary=:all:",
                "--no-deps",
                "-q",
                "-d",
                tmp,
            ],
            check=True,
        )
        (sdist,) = Path(tmp).glob("timm-*.tar.gz")
        with tarfile.open(sdist) as archive:
            member = archive.extractfile(f"timm-{version}/tests/test_models.py")
            if member is None:
                raise SystemExit(f"{sdist.name} has no tests/test_models.py")
            return member.read().decode()


def main() -> None:
    timm_version = version("timm")  # not `import timm`: that needs torchvision to load
    header = HEADER.format(version=timm_version)
    if TARGET.is_file() and TARGET.read_text().startswith(header):
        return
    text = header + add_bixt(download_test_models(timm_version))
    partial = TARGET.with_suffix(".py.partial")
    partial.write_text(text)
    partial.replace(TARGET)
    print(f"wrote {TARGET} (timm {timm_version})")


if __name__ == "__main__":
    main()
