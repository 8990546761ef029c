# The image every Kubeflow Pipelines step runs in (`make kfp KFP_IMAGE=<this image>`).
# Same as the local environment (tools/env.sh): Debian 13's Python 3.13, the same lock file, the
# project on top, Keras 2. The compiled spec runs `python -m tfx.orchestration.kubeflow.v2.
# container.kubeflow_v2_run_executor`, so `python` must be the virtualenv's.
FROM debian:trixie-slim

RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/*

ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    TF_USE_LEGACY_KERAS=1 \
    PYTHONUNBUFFERED=1

# The lock alone first: this layer is rebuilt only when the lock changes.
COPY requirements/lock.txt /opt/tfx-taxi/requirements/lock.txt
RUN python3 -m venv /opt/venv \
 && pip install --no-cache-dir -r /opt/tfx-taxi/requirements/lock.txt

# Steps import models.* by module path and read pipeline/schema/ from /opt/tfx-taxi.
COPY . /opt/tfx-taxi
RUN pip install --no-cache-dir --no-deps /opt/tfx-taxi
WORKDIR /opt/tfx-taxi
