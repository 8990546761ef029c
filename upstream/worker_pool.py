"""Beam's SDK worker pool for a Flink or Spark cluster on this machine: one Python process per
TaskManager's worker, where LOOPBACK runs them all as threads of the submitting process.

    python -m upstream.worker_pool 127.0.0.1:50000     (tools/cluster.sh flink up starts it, in the
                                                       environment: its Keras setting, its Python)

and the runs take `--environment-type EXTERNAL --image 127.0.0.1:50000`. It is Beam's own pool
(worker_pool_main's BeamFnExternalWorkerPoolServicer in process mode) with two differences:

- it listens on the address given, not on every interface as worker_pool_main does (whoever reaches
  a pool can start a worker that runs the code it is sent);
- a worker id started by several TaskManagers is stopped only when the last of them stops it. Every
  TaskManager numbers its workers alike ("1-1", ...); Beam's pool keys its processes by that id, so
  the first TaskManager to finish would kill the other's worker mid-bundle (the same trap as
  workarounds.loopback_worker_ids_shared). A worker ends by itself when its control stream closes.
"""

import collections
import signal
import sys
import threading


def serve(address: str) -> None:
    import grpc
    from apache_beam.portability.api import beam_fn_api_pb2, beam_fn_api_pb2_grpc
    from apache_beam.runners.worker.worker_pool_main import BeamFnExternalWorkerPoolServicer, kill_process_gracefully
    from apache_beam.utils import thread_pool_executor

    class Pool(BeamFnExternalWorkerPoolServicer):
        def __init__(self):
            super().__init__(use_process=True)
            self._lock = threading.Lock()
            self._by_id = collections.defaultdict(list)  # worker id -> its processes, one per start
            self._starts = collections.Counter()  # worker id -> starts not stopped yet

        def StartWorker(self, request, context):
            with self._lock:
                response = super().StartWorker(request, context)
                process = self._worker_processes.pop(request.worker_id, None)
                if process is not None:
                    self._by_id[request.worker_id].append(process)
                    self._starts[request.worker_id] += 1
                return response

        def StopWorker(self, request, context):
            with self._lock:
                self._starts[request.worker_id] -= 1
                if self._starts[request.worker_id] <= 0:  # the last TaskManager with this id
                    for process in self._by_id.pop(request.worker_id, []):
                        if process.poll() is None:
                            kill_process_gracefully(process)
                    del self._starts[request.worker_id]
            return beam_fn_api_pb2.StopWorkerResponse()

        def stop_all(self):
            with self._lock:
                for processes in self._by_id.values():
                    for process in processes:
                        if process.poll() is None:
                            kill_process_gracefully(process)

    pool = Pool()
    server = grpc.server(thread_pool_executor.shared_unbounded_instance())
    if not server.add_insecure_port(address):
        raise SystemExit(f"worker pool: cannot listen on {address}")
    beam_fn_api_pb2_grpc.add_BeamFnExternalWorkerPoolServicer_to_server(pool, server)
    server.start()
    print(f"worker pool: listening on {address}", flush=True)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    stopped.wait()
    server.stop(5)
    pool.stop_all()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python -m upstream.worker_pool HOST:PORT")
    serve(sys.argv[1])
