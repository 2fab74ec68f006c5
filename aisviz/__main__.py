import sys

from aisviz.cli.main import main

sys.exit(main())
