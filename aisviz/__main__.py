import sys

from aisviz.cli.commands import main

sys.exit(main())
