#!/usr/bin/env bash
# Real local Flink and Spark clusters for the pipeline's `--profile flink|spark`, and Beam's job servers.
#
#   tools/cluster.sh flink up       a JobManager and two TaskManagers (one slot each), on 127.0.0.1
#   tools/cluster.sh flink down     stop them (only the processes this run directory started)
#   tools/cluster.sh flink status   what runs, and the REST address
#   tools/cluster.sh flink jar      build (once) and print the Beam job server jar
#   tools/cluster.sh flink fetch    fetch (once) the distribution and the job server, start nothing
#                                   (Maven runs on the host: .ci/run calls this before the tests)
#   tools/cluster.sh spark up|down|status|jar|fetch
#                                   the same for a Spark standalone master and two workers (one
#                                   core each) on 127.0.0.1
#
# Flink's own distribution comes from PyPI (apache-flink: bin/ and conf/; apache-flink-libraries:
# lib/ with flink-dist), Beam's Flink job server from Maven (tools/jobserver/pom.xml says why it is
# assembled from modules). Both are cached under the environment's cache directory, like the
# Python environment; the JVMs run inside the project environment (tools/env.sh exec), whose Java
# comes from tools/debian.env. Safe to call twice: `up` on a running cluster says so, `down` on a
# stopped one too.
#
# Spark's distribution is PyPI's pyspark sdist (bin/, sbin/, jars/: all of Spark), Beam's Spark job
# server the Maven modules of tools/jobserver/spark/pom.xml plus that same distribution's jars, so
# the job server's Spark client is the cluster's Spark.
#
# Settings (environment): FLINK_REST_PORT (8081), FLINK_RPC_PORT (6123), FLINK_WORKER_POOL_PORT
# (50000: the SDK worker pool `flink up` starts beside the cluster), FLINK_RUN_DIR (where
# config, logs and pid files live; default <cache>/flink-run); SPARK_MASTER_PORT (7077),
# SPARK_MASTER_WEBUI_PORT (8080), SPARK_RUN_DIR (default <cache>/spark-run). Tests start their own
# clusters with their own ports and run directories.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
CACHE=${TFX_PIPELINE_CACHE:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/tfx-taxi-pipeline}
POM=$REPO/tools/jobserver/pom.xml
pom_property() { sed -n "s:.*<$1>\(.*\)</$1>.*:\1:p" "$POM" | head -n 1; }
BEAM_JAVA_VERSION=$(pom_property beam.java.version)
FLINK_RUNNER=$(pom_property beam.flink.runner)     # beam-runners-flink-1.19
FLINK_MINOR=${FLINK_RUNNER#beam-runners-flink-}     # 1.19: the cluster must be this Flink
FLINK_VERSION=$FLINK_MINOR.3                        # the newest 1.19 on PyPI
FLINK_HOME=$CACHE/flink-$FLINK_VERSION
JOB_SERVER_DIR=$CACHE/beam-job-server/flink-$FLINK_MINOR-$BEAM_JAVA_VERSION
JOB_SERVER_JAR=$JOB_SERVER_DIR/job-server.jar
SPARK_POM=$REPO/tools/jobserver/spark/pom.xml
SPARK_VERSION=$(sed -n 's:.*<spark.version>\(.*\)</spark.version>.*:\1:p' "$SPARK_POM" | head -n 1)
SPARK_HOME_DIR=$CACHE/spark-$SPARK_VERSION
SPARK_JOB_SERVER_DIR=$CACHE/beam-job-server/spark-$SPARK_VERSION-$BEAM_JAVA_VERSION
SPARK_JOB_SERVER_JAR=$SPARK_JOB_SERVER_DIR/job-server.jar
SPARK_PORT=${SPARK_MASTER_PORT:-7077}
SPARK_UI_PORT=${SPARK_MASTER_WEBUI_PORT:-8080}
SPARK_RUN=${SPARK_RUN_DIR:-$CACHE/spark-run}
SPARK_WORKERS=2
REST_PORT=${FLINK_REST_PORT:-8081}
RPC_PORT=${FLINK_RPC_PORT:-6123}
RUN_DIR=${FLINK_RUN_DIR:-$CACHE/flink-run}
POOL_PORT=${FLINK_WORKER_POOL_PORT:-50000}
TASKMANAGERS=2

say() { printf 'cluster: %s\n' "$*" >&2; }
die() { printf 'cluster: error: %s\n' "$*" >&2; exit 1; }
in_env() { bash "$REPO/tools/env.sh" exec "$@"; }

# What the fetch runs on this machine: Maven (with its JDK) and pip. A new Debian machine may have
# neither: as root they come from its packages, as tools/env.sh gets debootstrap.
host_tools() {
  local missing=()
  command -v mvn >/dev/null || missing+=(maven)
  python3 -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)
  [ ${#missing[@]} -eq 0 ] && return
  [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null \
    || die "${missing[*]} missing, and only root with apt-get can install them here: install them, then run this again"
  say "installing ${missing[*]} (apt-get)"
  apt-get update -qq || die "apt-get update failed: ${missing[*]} cannot be installed"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || die "apt-get install ${missing[*]} failed"
}

# Flink's distribution, assembled from the two PyPI packages that carry it.
ensure_flink() {
  [ -f "$FLINK_HOME/.complete" ] && return
  host_tools
  local tmp; tmp=$(mktemp -d "$CACHE/flink-download.XXXXXX")
  say "fetching Flink $FLINK_VERSION's distribution from PyPI (once; about 230 MB)"
  python3 -m pip download --quiet --no-deps -d "$tmp" \
      "apache-flink==$FLINK_VERSION" --only-binary apache-flink --python-version 3.11 \
      --platform manylinux2014_x86_64 "apache-flink-libraries==$FLINK_VERSION" --no-binary apache-flink-libraries \
    || { rm -rf "$tmp"; die "pip could not download apache-flink/apache-flink-libraries $FLINK_VERSION"; }
  rm -rf "$FLINK_HOME" && mkdir -p "$FLINK_HOME"
  (cd "$tmp" && python3 -m zipfile -e apache_flink-*.whl wheel && tar xzf apache-flink-libraries-*.tar.gz)
  cp -r "$tmp"/wheel/pyflink/bin "$tmp"/wheel/pyflink/conf "$FLINK_HOME/"
  local deps; deps=$(echo "$tmp"/apache-flink-libraries-*/deps)
  cp -r "$deps"/lib "$FLINK_HOME/"
  for d in opt plugins; do [ -d "$deps/$d" ] && cp -r "$deps/$d" "$FLINK_HOME/"; done
  cp "$deps"/bin/* "$FLINK_HOME/bin/"
  chmod +x "$FLINK_HOME"/bin/*.sh "$FLINK_HOME"/bin/flink
  rm -rf "$tmp"
  touch "$FLINK_HOME/.complete"
}

# A manifest-only job-server.jar in $1 whose Class-Path names the jars of the folders $3... (relative
# to $1), main class $2. A jar in several folders (another version of the same artifact) is taken
# once, the newest version: Beam's modules and Spark's distribution both carry e.g. jackson, slf4j.
write_manifest() {
  python3 - "$@" <<'EOF'
import pathlib, re, sys, zipfile
root, main, folders = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3:]
def key(version):
    return [int(p) if p.isdigit() else -1 for p in re.split(r"[.\-]", version)]
chosen = {}
for folder in folders:
    for jar in sorted((root / folder).glob("*.jar")):
        m = re.match(r"(.+?)-(\d[\w.\-]*)\.jar$", jar.name)
        name, version = (m.group(1), m.group(2)) if m else (jar.stem, "")
        if name not in chosen or key(version) > key(chosen[name][0]):
            chosen[name] = (version, f"{folder}/{jar.name}")
jars = " ".join(path for _, path in sorted(chosen.values(), key=lambda v: v[1]))
lines = ["Manifest-Version: 1.0", "Main-Class: " + main, "Class-Path: " + jars]
def wrap(line):  # a manifest line holds 72 bytes; continuation lines start with a space
    out = [line[:70]]
    line = line[70:]
    while line:
        out.append(" " + line[:69]); line = line[69:]
    return "\r\n".join(out)
with zipfile.ZipFile(root / "job-server.jar", "w") as jar:
    jar.writestr("META-INF/MANIFEST.MF", "\r\n".join(wrap(l) for l in lines) + "\r\n\r\n")
EOF
}

# Beam's job server: its modules from Maven, and a manifest-only jar that puts them on the class path.
ensure_job_server() {
  [ -f "$JOB_SERVER_DIR/.complete" ] && return
  host_tools
  say "fetching Beam's Flink job server ($FLINK_RUNNER $BEAM_JAVA_VERSION) with Maven (once; about 150 MB)"
  rm -rf "$JOB_SERVER_DIR" && mkdir -p "$JOB_SERVER_DIR"
  mvn -B -q -f "$POM" dependency:copy-dependencies -DoutputDirectory="$JOB_SERVER_DIR/lib" \
      > "$JOB_SERVER_DIR/maven.log" 2>&1 \
    || { tail -n 20 "$JOB_SERVER_DIR/maven.log" >&2; die "Maven could not resolve $FLINK_RUNNER $BEAM_JAVA_VERSION"; }
  write_manifest "$JOB_SERVER_DIR" org.apache.beam.runners.flink.FlinkJobServerDriver lib
  touch "$JOB_SERVER_DIR/.complete"
}

rest_answers() { python3 -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$REST_PORT/taskmanagers', timeout=2)" 2>/dev/null; }
taskmanagers_up() {
  python3 - "$REST_PORT" <<'EOF' 2>/dev/null
import json, sys, urllib.request
tms = json.load(urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/taskmanagers", timeout=2))["taskmanagers"]
print(len(tms))
EOF
}

write_config() {
  mkdir -p "$RUN_DIR/conf" "$RUN_DIR/log"
  cp "$FLINK_HOME"/conf/log4j*.properties "$RUN_DIR/conf/"
  # Memory for a 2-core, 24 GiB machine shared with the pipeline itself: the Python SDK workers run
  # outside the JVMs (LOOPBACK: in the submitting process), so the JVMs only move bytes between
  # them. Network buffers: Flink's defaults (about 83 MB here, and 512 buffers per batch shuffle
  # partition) fail a Beam stage of ExampleGen's size with "Insufficient number of network
  # buffers". Task off-heap: Beam's gRPC data channel to the SDK workers buffers in direct memory,
  # which Flink caps at framework + task off-heap + network; with none for tasks, a partition of
  # 1M rows sent to a busy SDK worker fails with "OutOfMemoryError: Direct buffer memory".
  # Uncaught exceptions end the TaskManager: with Flink's default (LOG) a TaskManager whose gRPC
  # thread ran out of heap (10M rows) lived on, and the job hung with its tasks RUNNING.
  # Heartbeats: a killed TaskManager is dropped after 15 s instead of Flink's 50 s, so the job fails
  # soon and `up` can bring the cluster back to full strength.
  {
    sed -n '/^env:/,/^[a-z]/p' "$FLINK_HOME/conf/config.yaml" | sed '$d'   # the JVM's --add-opens
    cat <<EOF
jobmanager.rpc.address: 127.0.0.1
jobmanager.rpc.port: $RPC_PORT
jobmanager.bind-host: 127.0.0.1
jobmanager.memory.process.size: 1024m
taskmanager.host: 127.0.0.1
taskmanager.bind-host: 127.0.0.1
taskmanager.numberOfTaskSlots: 1
taskmanager.memory.process.size: 2560m
taskmanager.memory.task.off-heap.size: 768m
taskmanager.memory.managed.size: 128m
taskmanager.memory.network.min: 256m
taskmanager.memory.network.max: 256m
taskmanager.network.sort-shuffle.min-buffers: 64
cluster.uncaught-exception-handling: FAIL
heartbeat.interval: 2000
heartbeat.timeout: 15000
parallelism.default: $TASKMANAGERS
rest.address: 127.0.0.1
rest.bind-address: 127.0.0.1
rest.port: $REST_PORT
blob.server.port: 0
io.tmp.dirs: $RUN_DIR/tmp
EOF
  } > "$RUN_DIR/conf/config.yaml"
  mkdir -p "$RUN_DIR/tmp"
}

flink_env() {
  in_env env FLINK_CONF_DIR="$RUN_DIR/conf" FLINK_LOG_DIR="$RUN_DIR/log" FLINK_PID_DIR="$RUN_DIR" \
    FLINK_IDENT_STRING=tfx-taxi "$@"
}

# A process that runs: not gone, and not a zombie its parent has not reaped (kill -0 says yes to those).
alive() { [ -r "/proc/$1/stat" ] && [ "$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null)" != Z ]; }

# Drops the dead TaskManagers from this run directory's pid file; prints how many are alive.
live_taskmanagers() {
  local pidfile="$RUN_DIR/flink-tfx-taxi-taskexecutor.pid" pid
  [ -s "$pidfile" ] || { echo 0; return; }
  for pid in $(cat "$pidfile"); do alive "$pid" && echo "$pid"; done > "$pidfile.live" || true
  mv "$pidfile.live" "$pidfile"
  wc -l < "$pidfile"
}

# Beam's SDK worker pool for this cluster (upstream/worker_pool.py): one Python worker process per
# TaskManager, for runs with --environment-type EXTERNAL --image 127.0.0.1:$POOL_PORT.
pool_alive() { [ -s "$RUN_DIR/worker-pool.pid" ] && alive "$(cat "$RUN_DIR/worker-pool.pid")"; }
pool_up() {
  pool_alive && return
  # Only the pool runs in the background ($! is its pid), holding none of this script's streams.
  in_env bash -c 'cd "$1" || exit 1
                  nohup python -m upstream.worker_pool "127.0.0.1:$2" > "$3/log/worker-pool.log" 2>&1 < /dev/null &
                  echo $! > "$3/worker-pool.pid"' _ "$REPO" "$POOL_PORT" "$RUN_DIR"
  local i
  for i in $(seq 60); do
    grep -q "listening on" "$RUN_DIR/log/worker-pool.log" 2>/dev/null && return
    pool_alive || break
    sleep 1
  done
  tail -n 5 "$RUN_DIR/log/worker-pool.log" >&2 || true
  flink_down
  die "the SDK worker pool did not start on 127.0.0.1:$POOL_PORT (log: $RUN_DIR/log/worker-pool.log)"
}
pool_down() {
  pool_alive || return 0
  local pid i; pid=$(cat "$RUN_DIR/worker-pool.pid")
  kill "$pid" 2>/dev/null || true
  for i in $(seq 20); do alive "$pid" || break; sleep 0.5; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$RUN_DIR/worker-pool.pid"
}

flink_up() {
  local i missing=$TASKMANAGERS
  if rest_answers; then
    # A running cluster that lost TaskManagers (killed, crashed) gets them back; a whole one is left alone.
    missing=$((TASKMANAGERS - $(live_taskmanagers)))
    if [ "$missing" -le 0 ]; then
      pool_up
      say "Flink already answers on 127.0.0.1:$REST_PORT ($(taskmanagers_up) TaskManagers)"; return; fi
    say "Flink answers on 127.0.0.1:$REST_PORT with $((TASKMANAGERS - missing)) of $TASKMANAGERS TaskManagers: starting $missing"
    # Until the JobManager has dropped the lost ones (heartbeat.timeout), its count would include them.
    for i in $(seq 30); do
      [ "$(taskmanagers_up || echo 0)" -le "$((TASKMANAGERS - missing))" ] && break
      sleep 1
    done
  else
    ensure_flink
    ensure_job_server
    write_config
    flink_env "$FLINK_HOME/bin/jobmanager.sh" start > /dev/null
  fi
  for i in $(seq "$missing"); do flink_env "$FLINK_HOME/bin/taskmanager.sh" start > /dev/null; done
  for i in $(seq 90); do
    [ "$(taskmanagers_up || echo 0)" = "$TASKMANAGERS" ] && {
      pool_up
      say "Flink $FLINK_VERSION up: REST http://127.0.0.1:$REST_PORT, $TASKMANAGERS TaskManagers (logs: $RUN_DIR/log)"
      say "SDK worker pool: 127.0.0.1:$POOL_PORT (--environment-type EXTERNAL --image 127.0.0.1:$POOL_PORT)"
      say "job server jar: $JOB_SERVER_JAR"
      return; }
    sleep 1
  done
  tail -n 20 "$RUN_DIR"/log/*standalonesession*.log >&2 || true
  flink_down
  die "Flink did not come up with $TASKMANAGERS TaskManagers on 127.0.0.1:$REST_PORT within 90 s (logs: $RUN_DIR/log)"
}

flink_down() {
  local stopped=0 kind
  for kind in taskexecutor standalonesession; do
    local pidfile="$RUN_DIR/flink-tfx-taxi-$kind.pid"
    [ -s "$pidfile" ] || continue
    flink_env "$FLINK_HOME/bin/flink-daemon.sh" stop-all "$kind" > /dev/null 2>&1 || true
    stopped=1
  done
  pool_alive && { pool_down; stopped=1; }
  if [ "$stopped" = 1 ]; then say "Flink stopped (run directory $RUN_DIR)"; else say "no Flink running from $RUN_DIR"; fi
}

flink_status() {
  if rest_answers; then echo "Flink: REST http://127.0.0.1:$REST_PORT answers, $(taskmanagers_up) TaskManagers" \
    "$(pool_alive && echo "SDK worker pool 127.0.0.1:$POOL_PORT" || echo "no SDK worker pool")"
  else echo "Flink: nothing answers on 127.0.0.1:$REST_PORT"; return 1; fi
}

# --- Spark -------------------------------------------------------------------------------------

# Spark's distribution: PyPI's pyspark sdist carries all of it under deps/ (bin, sbin, jars).
ensure_spark() {
  [ -f "$SPARK_HOME_DIR/.complete" ] && return
  host_tools
  local tmp; tmp=$(mktemp -d "$CACHE/spark-download.XXXXXX")
  say "fetching Spark $SPARK_VERSION's distribution from PyPI (pyspark, once; about 320 MB)"
  python3 -m pip download --quiet --no-deps -d "$tmp" "pyspark==$SPARK_VERSION" --no-binary pyspark \
    || { rm -rf "$tmp"; die "pip could not download pyspark $SPARK_VERSION"; }
  (cd "$tmp" && tar xzf pyspark-*.tar.gz)
  rm -rf "$SPARK_HOME_DIR" && mkdir -p "$SPARK_HOME_DIR"
  local deps; deps=$(echo "$tmp"/pyspark-*/deps)
  cp -r "$deps"/bin "$deps"/sbin "$deps"/jars "$SPARK_HOME_DIR/"
  chmod +x "$SPARK_HOME_DIR"/bin/* "$SPARK_HOME_DIR"/sbin/*
  rm -rf "$tmp"
  touch "$SPARK_HOME_DIR/.complete"
}

# Beam's Spark job server: the Beam modules from Maven, Spark's own jars from the distribution
# (a link, not a copy), one manifest-only jar over both.
ensure_spark_job_server() {
  [ -f "$SPARK_JOB_SERVER_DIR/.complete" ] && return
  ensure_spark
  say "fetching Beam's Spark job server (beam-runners-spark-3 $BEAM_JAVA_VERSION) with Maven (once; about 60 MB)"
  rm -rf "$SPARK_JOB_SERVER_DIR" && mkdir -p "$SPARK_JOB_SERVER_DIR"
  mvn -B -q -f "$SPARK_POM" -Dbeam.java.version="$BEAM_JAVA_VERSION" dependency:copy-dependencies \
      -DoutputDirectory="$SPARK_JOB_SERVER_DIR/lib" > "$SPARK_JOB_SERVER_DIR/maven.log" 2>&1 \
    || { tail -n 20 "$SPARK_JOB_SERVER_DIR/maven.log" >&2; die "Maven could not resolve beam-runners-spark-3 $BEAM_JAVA_VERSION"; }
  ln -s "$SPARK_HOME_DIR/jars" "$SPARK_JOB_SERVER_DIR/spark"
  write_manifest "$SPARK_JOB_SERVER_DIR" org.apache.beam.runners.spark.SparkJobServerDriver lib spark
  touch "$SPARK_JOB_SERVER_DIR/.complete"
}

spark_json() {
  python3 - "$SPARK_UI_PORT" "$1" <<'EOF' 2>/dev/null
import json, sys, urllib.request
master = json.load(urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/json/", timeout=2))
print(sum(w["state"] == "ALIVE" for w in master["workers"]) if sys.argv[2] == "workers" else master["url"])
EOF
}

spark_env() {
  # Memory for a 2-core, 24 GiB machine: the daemons 512 MiB each; each worker offers one core and
  # 2 GiB, of which an executor takes Spark's default 1 GiB heap (the SDK workers, LOOPBACK, are
  # threads of the submitting process, not of the executors).
  in_env env SPARK_HOME="$SPARK_HOME_DIR" SPARK_CONF_DIR="$SPARK_RUN/conf" SPARK_LOG_DIR="$SPARK_RUN/log" \
    SPARK_PID_DIR="$SPARK_RUN" SPARK_WORKER_DIR="$SPARK_RUN/work" SPARK_LOCAL_DIRS="$SPARK_RUN/tmp" \
    SPARK_IDENT_STRING=tfx-taxi SPARK_LOCAL_IP=127.0.0.1 SPARK_DAEMON_MEMORY=512m "$@"
}

spark_up() {
  if spark_json workers > /dev/null; then
    say "Spark already answers on 127.0.0.1:$SPARK_UI_PORT ($(spark_json workers) workers)"; return; fi
  ensure_spark
  ensure_spark_job_server
  mkdir -p "$SPARK_RUN/conf" "$SPARK_RUN/log" "$SPARK_RUN/work" "$SPARK_RUN/tmp"
  local master="spark://127.0.0.1:$SPARK_PORT" i
  spark_env "$SPARK_HOME_DIR/sbin/spark-daemon.sh" start org.apache.spark.deploy.master.Master 1 \
    --host 127.0.0.1 --port "$SPARK_PORT" --webui-port "$SPARK_UI_PORT" > /dev/null
  # Workers' web UIs on free ports (0): Spark's default 8081 is Flink's REST port.
  for i in $(seq "$SPARK_WORKERS"); do
    spark_env "$SPARK_HOME_DIR/sbin/spark-daemon.sh" start org.apache.spark.deploy.worker.Worker "$i" \
      --host 127.0.0.1 --port 0 --webui-port 0 --cores 1 --memory 2g --work-dir "$SPARK_RUN/work" "$master" > /dev/null
  done
  for i in $(seq 90); do
    [ "$(spark_json workers || echo 0)" = "$SPARK_WORKERS" ] && {
      say "Spark $SPARK_VERSION up: master $master, web UI http://127.0.0.1:$SPARK_UI_PORT, $SPARK_WORKERS workers (logs: $SPARK_RUN/log)"
      say "job server jar: $SPARK_JOB_SERVER_JAR"
      return; }
    sleep 1
  done
  tail -n 20 "$SPARK_RUN"/log/*Master*.out >&2 || true
  spark_down
  die "Spark did not come up with $SPARK_WORKERS workers on 127.0.0.1:$SPARK_PORT within 90 s (logs: $SPARK_RUN/log)"
}

spark_down() {
  local stopped=0 pidfile
  for pidfile in "$SPARK_RUN"/spark-tfx-taxi-org.apache.spark.deploy.worker.Worker-*.pid \
                 "$SPARK_RUN"/spark-tfx-taxi-org.apache.spark.deploy.master.Master-*.pid; do
    [ -s "$pidfile" ] || continue
    local class instance
    class=$(basename "$pidfile" .pid); class=${class#spark-tfx-taxi-}; instance=${class##*-}; class=${class%-*}
    spark_env "$SPARK_HOME_DIR/sbin/spark-daemon.sh" stop "$class" "$instance" > /dev/null 2>&1 || true
    stopped=1
  done
  if [ "$stopped" = 1 ]; then say "Spark stopped (run directory $SPARK_RUN)"; else say "no Spark running from $SPARK_RUN"; fi
}

spark_status() {
  if spark_json workers > /dev/null; then
    echo "Spark: master $(spark_json url) answers (web UI http://127.0.0.1:$SPARK_UI_PORT), $(spark_json workers) workers"
  else echo "Spark: nothing answers on 127.0.0.1:$SPARK_UI_PORT"; return 1; fi
}

case "${1:-} ${2:-}" in
  "flink up") flink_up ;;
  "flink down") flink_down ;;
  "flink status") flink_status ;;
  "flink jar") ensure_job_server; echo "$JOB_SERVER_JAR" ;;
  "flink fetch") ensure_flink; ensure_job_server ;;
  "spark up") spark_up ;;
  "spark down") spark_down ;;
  "spark status") spark_status ;;
  "spark jar") ensure_spark_job_server; echo "$SPARK_JOB_SERVER_JAR" ;;
  "spark fetch") ensure_spark; ensure_spark_job_server ;;
  *) die "usage: tools/cluster.sh flink|spark up|down|status|jar|fetch" ;;
esac
