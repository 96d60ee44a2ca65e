"""``python -m restyle``: the command line."""

import sys

from restyle.cli import main

sys.exit(main())
