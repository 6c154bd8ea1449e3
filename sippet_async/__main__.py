"""``python -m sippet_async`` runs the ``sippet`` command."""

from sippet_async._cli import main

raise SystemExit(main())
