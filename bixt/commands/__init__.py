"""Subcommands of the ``bixt`` command line (see bixt/cli.py)."""
