"""Subcommands of the ``bixt`` command line (see bixt/cli.py)."""

import argparse
import json


def help_text(doc: str | None) -> str:
    """A module docstring as ``--help`` text: plain text, so reStructuredText's double backticks are dropped."""
    return (doc or "").replace("``", "")


def json_mapping(text: str) -> dict:
    """An argparse type: a JSON object given on the command line (data options, model options)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"expected a JSON object, e.g. '{{\"max_length\": 1024}}': {error}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object (a mapping), got {text!r}")
    return value
