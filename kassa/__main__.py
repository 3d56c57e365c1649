"""`python -m kassa …`, the same as the `kassa` command."""

import sys

from kassa.cli import main

sys.exit(main())
