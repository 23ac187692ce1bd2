"""Subcommands of the ``bixt`` command line (see bixt/cli.py)."""


def help_text(doc: str | None) -> str:
    """A module docstring as ``--help`` text: plain text, so reStructuredText's double backticks are dropped."""
    return (doc or "").replace("``", "")
