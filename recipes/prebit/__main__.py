"""``python -m polymodal.recipes.prebit report ...`` (see :mod:`polymodal.recipes.prebit.report`)."""

from __future__ import annotations

from polymodal.recipes.prebit.report import main

if __name__ == "__main__":
    raise SystemExit(main())
