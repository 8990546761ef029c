# The image every Kubeflow Pipelines step runs in (`make kfp KFP_IMAGE=<this image>`).
# Same as the local environment (tools/env.sh): Debian 13's Python 3.13, the same lock file, the
# project on top, Keras 2. The compiled spec runs `python -m tfx.orchestration.kubeflow.v2.
# container.kubeflow_v2_run_executor`, so `python` must be the virtualenv's.
# The release is tools/env.sh's SUITE (FROM cannot read a file; tests hold the two together).
FROM debian:trixie-slim

# The Debian packages the image shares with the local rootfs, named once in tools/debian.env.
COPY tools/debian.env /opt/tfx-taxi/tools/debian.env
RUN . /opt/tfx-taxi/tools/debian.env \
 && apt-get update \
 && apt-get install -y --no-install-recommends $DEBIAN_PACKAGES \
 && rm -rf /var/lib/apt/lists/*

ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    TF_USE_LEGACY_KERAS=1 \
    PYTHONUNBUFFERED=1

# The lock alone first: this layer is rebuilt only when the lock changes. pip builds pyfarmhash
# (no cp313 wheel) with BUILD_PACKAGES, removed in the same step so the image does not keep them.
COPY requirements/lock.txt /opt/tfx-taxi/requirements/lock.txt
# A site's own CA for pip, for the build only (tools/image.sh passes the host's bundle); unset: none.
ARG PIP_CERT
RUN . /opt/tfx-taxi/tools/debian.env \
 && { [ -n "${PIP_CERT:-}" ] || unset PIP_CERT; } \
 && apt-get update \
 && apt-get install -y --no-install-recommends $BUILD_PACKAGES \
 && python3 -m venv /opt/venv \
 && pip install --no-cache-dir -r /opt/tfx-taxi/requirements/lock.txt \
 && apt-get purge -y --auto-remove $BUILD_PACKAGES \
 && rm -rf /var/lib/apt/lists/*

# Steps import models.* by module path and read pipeline/schema/ from /opt/tfx-taxi.
COPY . /opt/tfx-taxi
RUN pip install --no-cache-dir --no-deps /opt/tfx-taxi
WORKDIR /opt/tfx-taxi
