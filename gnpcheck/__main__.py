"""``python -m gnpcheck`` runs the ``gnpcheck`` command."""

import sys

from gnpcheck.cli import main

sys.exit(main())
