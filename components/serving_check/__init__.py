"""ServingCheck: the candidate served by a process that has TensorFlow and not this project's code.

TFX's InfraValidator needs Docker or Kubernetes; this gate runs anywhere the pipeline runs.
component.py (the TFX component), executor.py (a thin adapter), check.py (requests, the checks,
the figures, as plain functions), server.py (the standalone loader run in the fresh process;
it imports nothing of this project), options.py (defaults the configuration reads).
"""
