"""The `aisviz` command line."""
from aisviz.cli.commands import main

__all__ = ["main"]
