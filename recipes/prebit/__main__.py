"""``python -m polymodal.recipes.prebit report ...`` (see :mod:`polymodal.recipes.prebit.report`)."""

from polymodal.recipes.prebit.report import main

raise SystemExit(main())
