"""Where the documentation generators find things in the package: the one file to edit when modules move.

Every generated reference page (CLI, fields, exit codes, bundle format, environment variables) reads the code
through these names, so a restructure of the package means editing this file (and the `::: module` lines of
docs/reference/api/*.md), nothing else.
"""

# The argparse parser of the `aisviz` command: "module:factory".
PARSER_FACTORY = "aisviz.cli.commands:build_parser"
# The exit-code epilog that every command's --help prints.
EXIT_CODES_HELP = "aisviz.cli.commands:EXIT_CODES_HELP"
# The exception hierarchy with exit codes (its module docstring holds the exit-code table).
ERRORS_MODULE = "aisviz.errors"
# The sweep table: COLUMNS (in order), COLUMN_MEANINGS and SETTING_COLUMNS.
SWEEP_MODULE = "aisviz.pipeline.sweeps"
# Saliency comparison metrics: DEFINITIONS and TRANSFORMS.
COMPARE_MODULE = "aisviz.core.metrics"
# The result-bundle format: module docstring, FORMAT, VERSION, ARRAY_FIELDS, RAGGED_FIELDS, JSON_FIELDS.
BUNDLES_MODULE = "aisviz.pipeline.bundles"
# The dashboard result, whose module docstring describes every field a bundle stores.
RESULT_MODULE = "aisviz.pipeline.result"
# Folders (relative to the repository root) scanned for environment variable names.
ENV_SCAN = ("aisviz", "deploy", "notebooks")
