"""``python -m axon_lab`` runs the CLI."""

import sys

from axon_lab.cli import main

sys.exit(main())
