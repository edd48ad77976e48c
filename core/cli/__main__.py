"""``python -m polymodal.cli``."""

from polymodal.cli import run

raise SystemExit(run())
