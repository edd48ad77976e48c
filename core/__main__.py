"""``python -m polymodal``: the ``polymodal`` command."""

from polymodal.cli import run

raise SystemExit(run())
