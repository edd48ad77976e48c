"""Every hook a polymodal plugin may implement. One place, each typed and documented.

A plugin is a module (or object) exposed through the entry-point group ``polymodal``::

    [project.entry-points.polymodal]
    vectors = "polymodal_vectors"

and implements hooks with :data:`hookimpl`::

    from polymodal.hookspecs import hookimpl

    @hookimpl
    def register_modalities(register):
        register(VectorModality())
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:  # pragma: no cover
    from polymodal.modality import Modality

__all__ = ["hookimpl", "hookspec", "register_modalities"]

hookspec = pluggy.HookspecMarker("polymodal")
hookimpl = pluggy.HookimplMarker("polymodal")


@hookspec
def register_modalities(register: Callable[[Modality], None]) -> None:
    """Register the modalities this plugin provides.

    Call ``register(modality)`` once per :class:`polymodal.Modality`. The return value is
    ignored. A name already taken by an earlier plugin is not overwritten: the host warns,
    naming both plugins, and keeps the first (built-ins load first).
    """
