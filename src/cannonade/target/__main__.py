"""``python -m cannonade.target``: run the target in the foreground."""

from __future__ import annotations

from cannonade.target.server import main

raise SystemExit(main())
