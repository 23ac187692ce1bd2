"""A study: a declared grid of training runs (cells x seeds) over one recipe, read from ``configs/studies/NAME.yaml``.

The file is data only::

    title: Attention types at matched FLOPs
    kind: comparison                                   # which report renders it: comparison | scaling | symmetry
    recipe: configs/studies/fashion-mnist-conv4.yaml   # the ordinary `bixt train` recipe every cell starts from
    seeds: [0, 1, 2]
    overrides: {data.train_limit: 20000}               # for every cell
    quick: {schedule.epochs: 1, data.train_limit: 64}  # `--quick`: a few steps on a few items (tests)
    cells:                                             # cell name -> dotted `bixt train` overrides
      bidirectional: {model.name: bixt_ti_l64_p16}
      sequential: {model.name: sequential_ti_l64_p16}
      other-task:                                      # a cell may start from another recipe, and shrink its own
        recipe: configs/listops.yaml                   # way under --quick (after the study's quick overrides)
        quick: {data.options.num_examples: 64}
      finetuned:                                       # a cell may start from the weights of another cell's run of
        init_from: other-task                          # the same seed (model.init_from); it runs after that one
      cheap:                                           # a cell may run more (or fewer) seeds than the study's
        seeds: [0, 1, 2, 3]
    ordering: [[sequential], [bidirectional]]          # optional: a claim to check, groups of cells, low to high,
                                                       # or a list of claims: [[[a], [b]], [[a-long], [b-long]]]
    matched_cost: true                                 # optional: cells are meant to cost the same (report checks)
    checks: [point-order]                              # optional: extra measurements of every finished run
    bench: --model m1 m2 --tokens 1024 2048            # optional: the `bixt bench` arguments of the study's
                                                       # throughput table (one invocation, see the report), or a
                                                       # list of them, one table each (e.g. one per batch size)
    evaluations:                                       # optional: the last checkpoint of each finished run of
      cells: [other-task]                              # `cells` evaluated again on other data of its data set
      axis: longest sequence (tokens)                  # (`bixt eval --data-options`), one table and one plot
      limit: 2000                                      # items per evaluation (default: the run's eval_limit)
      quick: {num_examples: 8}                         # merged into every set's options under --quick
      sets:                                            # set name -> its place on the plot's axis and the
        own: {x: 250, options: {}}                     # data.options it changes (nested mappings merge)
        long: {x: 1024, options: {config: {min_length: 512, max_length: 1024}}}

Each (cell, seed) is one `bixt train` run; its overrides are the recipe's keys, so a cell's command line is exactly
what a user would type to rerun it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import yaml

StudyKind = Literal["comparison", "scaling", "symmetry"]
# point-order: each finished point-cloud run evaluated again with the points of every test cloud permuted.
StudyCheck = Literal["point-order"]
STUDY_DIR = Path("configs/studies")
_CELL_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")
# Keys of a cell that are not `bixt train` overrides.
CELL_KEYS = ("recipe", "quick", "init_from", "seeds")


class StudyError(ValueError):
    """A study file that cannot be run, or a request the study cannot answer (unknown cell, no runs)."""


def _check_seeds(path: Path, what: str, seeds: Any) -> None:
    integers = isinstance(seeds, list) and all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)
    if not seeds or not integers:
        raise StudyError(f"{path}: {what} must be a non-empty list of integers, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise StudyError(f"{path}: {what} repeat: {seeds}")


@dataclass(frozen=True)
class EvaluationSet:
    """Other data of a cell's data set: ``options`` merged into the run's ``data.options``, placed at ``x``."""

    name: str
    x: float
    options: dict[str, Any]


@dataclass(frozen=True)
class Evaluations:
    """Finished runs of ``cells`` evaluated again on each set (the study's `evaluations` key)."""

    cells: tuple[str, ...]
    axis: str
    sets: tuple[EvaluationSet, ...]
    limit: int | None = None
    quick: dict[str, Any] = field(default_factory=dict)

    def options(self, evaluation: EvaluationSet, *, quick: bool) -> dict[str, Any]:
        """The data options of `evaluation`; under --quick the study's shrinking ones on top."""
        return {**evaluation.options, **self.quick} if quick else dict(evaluation.options)


@dataclass(frozen=True)
class Study:
    name: str
    title: str
    kind: StudyKind
    recipe: Path
    seeds: tuple[int, ...]
    cells: dict[str, dict[str, Any]]
    overrides: dict[str, Any] = field(default_factory=dict)
    quick: dict[str, Any] = field(default_factory=dict)
    notes: str = ""  # free text for the study's README: what the grid is for, what was changed and why
    # claimed rankings, each groups of cells low -> high (checked by the report), e.g. one per budget of a grid
    orderings: tuple[tuple[tuple[str, ...], ...], ...] = ()
    matched_cost: bool = False  # the cells are meant to cost the same FLOPs: the report shows each one's deviation
    checks: tuple[StudyCheck, ...] = ()
    # `bixt bench` invocations (arguments, no --out), each rendered by the report as one throughput table
    bench: tuple[str, ...] = ()
    evaluations: Evaluations | None = None
    path: Path | None = None

    def cell_source(self, cell: str) -> str | None:
        """The cell whose run of the same seed this cell's run starts from (its ``init_from``), if any."""
        return self.cells[cell].get("init_from")

    def cell_seeds(self, cell: str) -> tuple[int, ...]:
        """The cell's own seeds if it lists them, else the study's."""
        return tuple(self.cells[cell].get("seeds", self.seeds))

    def cell_recipe(self, cell: str) -> Path:
        return Path(self.cells[cell].get("recipe", self.recipe))

    def cell_overrides(self, cell: str, *, quick: bool) -> dict[str, Any]:
        """The study's overrides, then the cell's, then (quick) the shrinking ones: later keys win."""
        if cell not in self.cells:
            raise StudyError(f"study {self.name!r} has no cell {cell!r}; its cells: {', '.join(self.cells)}")
        own = {key: value for key, value in self.cells[cell].items() if key not in CELL_KEYS}
        shrink = {**self.quick, **self.cells[cell].get("quick", {})} if quick else {}
        return {**self.overrides, **own, **shrink}


def override_args(overrides: dict[str, Any]) -> list[str]:
    """Dotted overrides -> `bixt train` arguments; ``--key=value`` so that negative numbers parse as values."""
    args = []
    for key, value in overrides.items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif value is None:
            text = "null"
        elif isinstance(value, list | tuple | dict):
            text = json.dumps(value)
        else:
            text = str(value)
        args.append(f"--{key}={text}")
    return args


def study_path(name_or_path: str) -> Path:
    """A study name (configs/studies/NAME.yaml, relative to the current directory) or a path to a study file."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml"):
        return path
    return STUDY_DIR / f"{name_or_path}.yaml"


def _orderings(raw: Any, path: Path) -> list[list[list[str]]]:
    """`ordering`: one claim (a list of at least two groups of cell names, low to high) or a list of such claims."""

    def is_claim(value: Any) -> bool:
        groups = value if isinstance(value, list) else []
        return len(groups) >= 2 and all(
            isinstance(group, list) and group and all(isinstance(cell, str) for cell in group) for group in groups
        )

    if raw == []:
        return []
    if is_claim(raw):
        return [raw]
    if isinstance(raw, list) and all(is_claim(claim) for claim in raw):
        return raw
    raise StudyError(
        f"{path}: ordering must be a claim, a list of at least two groups (lists) of cell names, low to high, "
        f"e.g. [[a], [b, c]], or a list of such claims, e.g. [[[a], [b]], [[c], [d]]]; got {raw!r}"
    )


def load_study(name_or_path: str) -> Study:
    path = study_path(name_or_path)
    if not path.is_file():
        known = sorted(p.stem for p in STUDY_DIR.glob("*.yaml") if _is_study_file(p)) if STUDY_DIR.is_dir() else []
        raise StudyError(f"no study file {path}; studies in {STUDY_DIR}/: {', '.join(known) or 'none'}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise StudyError(f"{path}: not valid YAML: {error}") from error
    if not isinstance(raw, dict):
        raise StudyError(f"{path}: a study file is a mapping with title, kind, recipe, seeds and cells")
    return _parse(raw, path)


def _is_study_file(path: Path) -> bool:
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError:
        return False
    return isinstance(raw, dict) and "cells" in raw


def _parse(raw: dict[str, Any], path: Path) -> Study:
    allowed = {
        "title", "kind", "recipe", "seeds", "cells", "overrides", "quick", "notes", "ordering", "matched_cost",
        "checks", "bench", "evaluations",
    }  # fmt: skip
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise StudyError(f"{path}: unknown keys {unknown}; a study file has {sorted(allowed)}")
    missing = [key for key in ("title", "kind", "recipe", "seeds", "cells") if key not in raw]
    if missing:
        raise StudyError(f"{path}: missing keys {missing}")
    if raw["kind"] not in get_args(StudyKind):
        raise StudyError(f"{path}: kind must be one of {get_args(StudyKind)}, got {raw['kind']!r}")
    seeds = raw["seeds"]
    _check_seeds(path, "seeds", seeds)
    cells = raw["cells"]
    if not isinstance(cells, dict) or not cells:
        raise StudyError(f"{path}: cells must map cell names to overrides")
    for name, overrides in cells.items():
        if not isinstance(name, str) or not _CELL_NAME.fullmatch(name):
            raise StudyError(f"{path}: cell name {name!r} must be lower-case letters, digits, '-' or '_'")
        if not isinstance(overrides, dict):
            raise StudyError(f"{path}: cell {name!r} must map dotted keys to values, got {overrides!r}")
        if not isinstance(overrides.get("quick", {}), dict):
            raise StudyError(f"{path}: the quick overrides of cell {name!r} must map dotted keys to values")
        if "seeds" in overrides:
            _check_seeds(path, f"the seeds of cell {name!r}", overrides["seeds"])
        source = overrides.get("init_from")
        if source is not None and (source not in cells or source == name or "init_from" in cells[source]):
            raise StudyError(
                f"{path}: cell {name!r}: init_from must name another cell of the study that does not itself start "
                f"from one, got {source!r}"
            )
        if source is not None:
            # each run starts from the source cell's run of the same seed, which must then exist
            missing = set(overrides.get("seeds", seeds)) - set(cells[source].get("seeds", seeds))
            if missing:
                raise StudyError(f"{path}: cell {name!r} runs seeds {sorted(missing)} that its init_from cell does not")
        recipe = Path(overrides.get("recipe", raw.get("recipe", "")))
        if not recipe.is_file():
            raise StudyError(
                f"{path}: recipe {recipe} of cell {name!r} not found (paths are relative to the repository root)"
            )
    orderings = _orderings(raw.get("ordering", []), path)
    unknown_cells = sorted({cell for claim in orderings for group in claim for cell in group} - set(cells))
    if unknown_cells:
        raise StudyError(f"{path}: ordering names cells that do not exist: {unknown_cells}")
    for key in ("overrides", "quick"):
        if not isinstance(raw.get(key, {}), dict):
            raise StudyError(f"{path}: {key} must map dotted keys to values")
    checks = raw.get("checks", [])
    if not isinstance(checks, list) or not set(checks) <= set(get_args(StudyCheck)):
        raise StudyError(f"{path}: checks must be a list of {get_args(StudyCheck)}, got {checks!r}")
    bench = raw.get("bench", [])
    bench = [bench] if isinstance(bench, str) else bench
    valid = isinstance(bench, list) and all(
        isinstance(args, str) and args.strip() and "--out" not in args for args in bench
    )
    if not valid:
        raise StudyError(
            f"{path}: bench must be the `bixt bench` arguments as one string, or a list of such strings, without --out"
            " and none empty (leave bench out for no throughput table)"
        )
    return Study(
        name=path.stem,
        title=str(raw["title"]),
        kind=raw["kind"],
        recipe=Path(raw["recipe"]),
        seeds=tuple(seeds),
        cells={name: dict(overrides) for name, overrides in cells.items()},
        overrides=dict(raw.get("overrides", {})),
        quick=dict(raw.get("quick", {})),
        notes=str(raw.get("notes", "")).strip(),
        orderings=tuple(tuple(tuple(group) for group in claim) for claim in orderings),
        matched_cost=bool(raw.get("matched_cost", False)),
        checks=tuple(checks),
        bench=tuple(args.strip() for args in bench),
        evaluations=_parse_evaluations(raw["evaluations"], cells, path) if "evaluations" in raw else None,
        path=path,
    )


def _parse_evaluations(raw: Any, cells: dict[str, Any], path: Path) -> Evaluations:
    shape = "a mapping with cells, axis and sets (set name -> {x: number, options: mapping}), optionally limit, quick"
    if not isinstance(raw, dict) or not {"cells", "axis", "sets"} <= set(raw):
        raise StudyError(f"{path}: evaluations must be {shape}")
    unknown = sorted(set(raw) - {"cells", "axis", "sets", "limit", "quick"})
    if unknown:
        raise StudyError(f"{path}: evaluations: unknown keys {unknown}; it is {shape}")
    chosen = raw["cells"]
    if not isinstance(chosen, list) or not chosen or not set(chosen) <= set(cells):
        raise StudyError(f"{path}: evaluations.cells must list cells of the study, got {chosen!r}")
    limit = raw.get("limit")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        raise StudyError(f"{path}: evaluations.limit must be a positive whole number, got {limit!r}")
    if not isinstance(raw.get("quick", {}), dict):
        raise StudyError(f"{path}: evaluations.quick must map data options to values")
    sets = raw["sets"]
    if not isinstance(sets, dict) or not sets:
        raise StudyError(f"{path}: evaluations.sets must map set names to {{x: number, options: mapping}}")
    parsed = []
    for name, entry in sets.items():
        if not isinstance(name, str) or not _CELL_NAME.fullmatch(name):
            raise StudyError(f"{path}: evaluation set name {name!r} must be lower-case letters, digits, '-' or '_'")
        x = entry.get("x") if isinstance(entry, dict) else None
        numeric = isinstance(x, int | float) and not isinstance(x, bool)
        if not numeric or set(entry) != {"x", "options"} or not isinstance(entry["options"], dict):
            raise StudyError(f"{path}: evaluation set {name!r} must be {{x: number, options: mapping}}, got {entry!r}")
        parsed.append(EvaluationSet(name, float(x), dict(entry["options"])))
    return Evaluations(
        cells=tuple(chosen),
        axis=str(raw["axis"]),
        sets=tuple(parsed),
        limit=limit,
        quick=dict(raw.get("quick", {})),
    )
