"""``python -m bench.proxy``: run the proxy benchmark from the repository root."""

import sys

from bench.proxy.cli import main

sys.exit(main())
