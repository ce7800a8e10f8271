"""``python -m trainval``: the same as the ``trainval`` command."""

import sys

from trainval.cli import main

sys.exit(main())
