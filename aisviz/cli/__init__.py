"""The `aisviz` command line."""
from aisviz.cli.main import main

__all__ = ["main"]
