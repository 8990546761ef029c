"""Model code run by the TFX Transform and Trainer components.

Keras 2 (`tf_keras`) is this project's Keras: TensorFlow Transform and TFMA build on it, and TFT
would switch to it on import anyway. Every entry point imports this package before TensorFlow so
local runs, tests and Kubeflow containers all make the same choice. For the same reason it is
where TFX's Google Cloud extensions are deferred to first use (before `tfx.v1` is imported).
"""

import os

KERAS_ENV = {"TF_USE_LEGACY_KERAS": "1"}
os.environ.update(KERAS_ENV)


def _defer_tfx_cloud_extensions() -> None:
    """`tfx.v1` imports its Google Cloud extensions eagerly: the Vertex AI client, 1.2 s of every
    process's start-up, for components this project does not use. A stand-in module imports them
    on first use instead (importlib's LazyLoader would not do: the import system reads the
    module's attributes as soon as `tfx.v1` imports it)."""
    import importlib
    import sys
    import types

    name = "tfx.v1.extensions"
    if name in sys.modules:
        return

    def load(attribute: str):
        if sys.modules.get(name) is stand_in:
            del sys.modules[name]
        real = importlib.import_module(name)
        setattr(importlib.import_module("tfx.v1"), "extensions", real)
        return getattr(real, attribute)

    stand_in = types.ModuleType(name, "Loaded on first use (see models/__init__.py).")
    stand_in.__getattr__ = load  # module-level __getattr__: called for attributes it lacks
    sys.modules[name] = stand_in


_defer_tfx_cloud_extensions()
