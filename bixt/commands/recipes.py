"""What ``bixt train`` says when it is not given a recipe: how to call it, and the recipes in configs/."""

from __future__ import annotations

from pathlib import Path

import bixt

LINE_WIDTH = 110


def recipe_dir() -> Path | None:
    """configs/ in the working directory, else the one beside the package's source (an editable install)."""
    for candidate in (Path("configs"), Path(bixt.__file__).resolve().parent.parent / "configs"):
        if candidate.is_dir() and any(candidate.glob("*.yaml")):
            return candidate
    return None


def _summary(recipe: Path, width: int) -> str:
    """The recipe's first comment line, shortened to ``width`` characters."""
    for line in recipe.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            text = line.lstrip("#").strip()
            return text if len(text) <= width else text[: width - 3].rstrip() + "..."
        if line.strip():
            break
    return ""


def what_to_pass(reason: str) -> str:
    """The message: ``reason``, the call's shape, and every recipe with its first comment line."""
    lines = [
        f"bixt train: {reason}",
        "usage: bixt train -c RECIPE.yaml [--section.key VALUE ...]   (all keys: bixt train --help)",
        "       bixt train --resume RUN_DIR                            (continue a run)",
    ]
    directory = recipe_dir()
    if directory is None:
        lines.append("\nno configs/ directory here: the recipes are in the bixt repository's configs/")
        return "\n".join(lines)
    recipes = sorted(directory.glob("*.yaml"))
    width = max(len(r.name) for r in recipes)
    lines.append(f"\nrecipes in {directory}/ (the first line of each file's comment):")
    lines += [f"  {r.name:<{width}}  {_summary(r, LINE_WIDTH - width - 4)}" for r in recipes]
    lines.append(f"\nfor example: bixt train -c {directory / 'fashion-mnist.yaml'}   (the README's main job)")
    return "\n".join(lines)
