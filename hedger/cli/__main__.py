"""``python -m hedger.cli``: the ``hedger`` command."""

import sys

from hedger.cli.main import main

sys.exit(main())
