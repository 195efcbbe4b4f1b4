"""``python -m plumbob``: the same entry point as the ``plumbob`` console script."""

from plumbob.cli import main

raise SystemExit(main())
