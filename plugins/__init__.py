"""Built-in modality plugins. Each sub-package registers through the ``polymodal`` entry points,
exactly as a third-party plugin would; none is imported by ``import polymodal``."""
