"""``python -m credly_ops.cli``: the same as the ``credly-ops`` script."""

from credly_ops.cli import main

raise SystemExit(main())
