"""Model code run by the TFX Transform and Trainer components.

Keras 2 (`tf_keras`) is this project's Keras: TensorFlow Transform and TFMA build on it, and TFT
would switch to it on import anyway. Every entry point imports this package before TensorFlow so
local runs, tests and Kubeflow containers all make the same choice. For the same reason it is
where TFX's Google Cloud extensions are deferred to first use (before `tfx.v1` is imported).
"""

import os

from upstream import workarounds

KERAS_ENV = {"TF_USE_LEGACY_KERAS": "1"}
os.environ.update(KERAS_ENV)

workarounds.defer_tfx_cloud_extensions()
