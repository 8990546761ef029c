# The project's public interface. Every target runs through tools/env.sh, which builds the
# environment on first use (natively, or in a Debian 13 root filesystem where this machine's
# glibc is too old for TFX 1.21's wheels) and reuses it after that.
#
#   make run  [OUTPUT_DIR=dir] [DATA_DIR=dir] [METADATA_STORE=mysql://user@host/db] [PUSHGATEWAY=http://host:9091] [ARGS="--train-steps 500 ..."]
#   make test [ARGS="-k config ..."]        the default suite (CI runs it, then ARGS="-m slow")
#   make test ARGS="-m slow"                the slow tier alone (tests marked slow)
#   make test-slow                          the default suite plus the slow tier
#   make exec CMD="python3 my_script.py"    any command inside the project environment
#   make report [RUN=latest~1]              (re)write a run's report (make run writes one for each run)
#   make tensorboard [OUTPUT_DIR=dir] [ARGS="--port 6007"]   TensorBoard on the Trainer's logs (port 6006)
#   make bench-lineage                      time 'lineage trace' on a store grown to 100+ runs
#   make bench-tflite                       each TFLite quantization mode on the latest run's model
#   make bench-spans [ARGS="--rows 1800"]    a --train-spans 3 run against a 1-span run, same span size
#   make bench-serving                      the serving check's cost on the latest run's model
#   make bench-distribute [ARGS="--replicas 2 --steps 300"]   Trainer examples/s: 1 replica, N replicas, N workers
#   make bench [BENCH_ROWS="100000 1000000"] this project vs TFX's taxi example, then on synthetic rows
#   make bench-quick                        the same without the synthetic rows (a few minutes)
#   make bench-scale [SCALE_ROWS=...]       the faster of direct-mp/Flink at 1M, 3M, 10M synthetic rows
#   make bench-example-gen [EXAMPLE_GEN_ROWS=...]   CsvExampleGen alone: TFX's executor and the project's, 1M and 3M rows
#   make simulate [SPANS=5] [ARGS="--warm-start"]   synthetic spans arrive one by one, a run after each, then the history
#   make schema [SCHEMA_OUT=file]           draft a schema from the data with SchemaGen
#   make env                                build the environment only, print its route
#   make lock                               re-resolve pyproject.toml into requirements/lock.txt
#   make kfp KFP_IMAGE=... KFP_PIPELINE_ROOT=gs://... [KFP_DATA_DIR=gs://...]   compile to $(OUTPUT_DIR)/kubeflow/chicago_taxi.yaml
#   make kfp-submit KFP_HOST=http://...     upload that spec to a KFP endpoint and start a run
#   make image                              the Kubeflow image, built with buildah (tools/image.sh; cached by lock)
#   make image-push REGISTRY=host/path      push it as REGISTRY/tfx-taxi:<commit> (DRY_RUN=1: print the command)
#   make image-size                         the image's size and what makes it up
#   make flink-up / flink-down              a local Flink session cluster (JobManager + 2 TaskManagers, 127.0.0.1:8081; SDK worker pool :50000)
#   make run-flink [ARGS=...]               the pipeline with its Beam components on that cluster
#   make spark-up / spark-down              a local Spark standalone cluster (master + 2 workers, spark://127.0.0.1:7077)
#   make run-spark [ARGS=...]               the pipeline with its Beam components on that cluster

OUTPUT_DIR ?= outputs
DATA_DIR ?=
# The MLMD store: default <OUTPUT_DIR>/metadata.sqlite; a team's mysql://USER@HOST[:PORT]/DATABASE
# (password from MLMD_MYSQL_PASSWORD or MLMD_MYSQL_PASSWORD_FILE, never on the command line).
METADATA_STORE ?=
# A Pushgateway to push each run's Prometheus metrics to, e.g. http://HOST:9091 (they are always
# written to <OUTPUT_DIR>/metrics/ for node_exporter's textfile collector).
PUSHGATEWAY ?=
ARGS ?=
CMD ?=
RUN ?= latest
SCHEMA_OUT ?= $(OUTPUT_DIR)/schema_draft.pbtxt

ENV := bash tools/env.sh
# The user's own paths: tools/env.sh refuses, up front, any the environment could not see.
export TFX_ENV_USER_PATHS = $(OUTPUT_DIR) $(DATA_DIR)
DATA_OPT = $(if $(DATA_DIR),--data-dir "$(DATA_DIR)")
STORE_OPT = $(if $(METADATA_STORE),--metadata-store "$(METADATA_STORE)")
PUSH_OPT = $(if $(PUSHGATEWAY),--pushgateway "$(PUSHGATEWAY)")

.PHONY: run report test test-slow exec tensorboard bench bench-distribute bench-quick bench-scale bench-example-gen bench-lineage bench-tflite bench-serving bench-spans schema env lock clean kfp kfp-submit
.PHONY: flink-up flink-down run-flink spark-up spark-down run-spark image image-push image-size simulate

run:
	$(ENV) exec python -m cli run --output-dir "$(OUTPUT_DIR)" $(DATA_OPT) $(STORE_OPT) $(PUSH_OPT) $(ARGS)

# FLINK: Flink's and Spark's distributions and Beam's job servers for the cluster tests, fetched once
# (Maven and pip run on this machine; tools/cluster.sh installs them as root where they are missing).
FLINK = bash tools/cluster.sh flink fetch && bash tools/cluster.sh spark fetch

test:
	$(ENV) selftest
	$(FLINK)
	$(ENV) exec python -m pytest $(ARGS)

test-slow:
	$(ENV) selftest
	$(FLINK)
	$(ENV) exec python -m pytest -m "slow or not slow" $(ARGS)

# $(value CMD): the command exactly as given ($VARS and quotes intact), single-quoted for bash.
QUOTED_CMD = '$(subst ','\'',$(value CMD))'
exec:
	@test -n $(QUOTED_CMD) || { echo 'usage: make exec CMD="command ..."' >&2; exit 2; }
	$(ENV) exec bash -c $(QUOTED_CMD)

tensorboard:
	$(ENV) exec python -m cli tensorboard --output-dir "$(OUTPUT_DIR)" $(ARGS)

# The run's report: <OUTPUT_DIR>/reports/run-<time>/report.html (self-contained) and report.md.
report:
	$(ENV) exec python -m cli report $(RUN) --output-dir "$(OUTPUT_DIR)" $(STORE_OPT) $(ARGS)

bench-lineage:
	$(ENV) exec python -m lineage.bench --mlmd-sqlite "$(OUTPUT_DIR)/metadata.sqlite" $(ARGS)

bench-tflite:
	$(ENV) exec python -m benchmarks.tflite --output-dir "$(OUTPUT_DIR)" $(ARGS)

bench-serving:
	$(ENV) exec python -m benchmarks.serving --output-dir "$(OUTPUT_DIR)" $(ARGS)

bench-spans:
	$(ENV) exec python -m benchmarks.spans $(ARGS)

# Side by side with TFX's own taxi example, back to back; results in $(OUTPUT_DIR)/bench/bench.{md,png,json}.
BENCH_ROWS ?= 100000 1000000
bench:
	$(ENV) exec python -m benchmarks.pipeline --output-dir "$(OUTPUT_DIR)/bench" $(foreach n,$(BENCH_ROWS),--rows $(n)) $(ARGS)
	$(ENV) exec python -m benchmarks.distribute --output-dir "$(OUTPUT_DIR)/bench/project" --json-out "$(OUTPUT_DIR)/bench/distribute.json"
	$(ENV) exec python -m benchmarks.beam_clusters --output-dir "$(OUTPUT_DIR)/bench" $(foreach n,$(BEAM_BENCH_ROWS),--rows $(n))

# The same synthetic rows on direct-mp and on a Flink cluster, LOOPBACK and with its SDK worker pool
# (bench-beam.md, part of `make bench`), and the scaling line of the fastest (bench-scale.md; reads
# bench-beam.json, direct-mp without it).
BEAM_BENCH_ROWS ?= 1000000
SCALE_ROWS ?= 1000000 3000000 10000000
bench-scale:
	$(ENV) exec python -m benchmarks.beam_clusters --output-dir "$(OUTPUT_DIR)/bench" --scale $(foreach n,$(SCALE_ROWS),--rows $(n)) $(ARGS)

# CsvExampleGen alone on the in-process runner, TFX's executor and the project's (bench-example-gen.md).
EXAMPLE_GEN_ROWS ?= 1000000 3000000
bench-example-gen:
	$(ENV) exec python -m benchmarks.example_gen --output-dir "$(OUTPUT_DIR)/bench" $(foreach n,$(EXAMPLE_GEN_ROWS),--rows $(n)) $(ARGS)

# The Trainer at 1 replica, N logical CPU replicas and N worker processes, on a finished run's Transform output.
bench-distribute:
	$(ENV) exec python -m benchmarks.distribute --output-dir "$(OUTPUT_DIR)" $(ARGS)

bench-quick:
	$(ENV) exec python -m benchmarks.pipeline --output-dir "$(OUTPUT_DIR)/bench" $(ARGS)

# Into $(OUTPUT_DIR)/simulate (spans in its spans/): span 3 of 4 or more is broken; ARGS go to every run.
SPANS ?= 5
simulate:
	$(ENV) exec python -m benchmarks.simulate --spans $(SPANS) --output-dir "$(OUTPUT_DIR)/simulate" $(ARGS)

schema:
	$(ENV) exec python -m cli schema --output "$(SCHEMA_OUT)" $(DATA_OPT) $(ARGS)

env:
	$(ENV) ensure

# Kubeflow Pipelines: image, roots and endpoint come from KFP_* variables (or options in ARGS).
kfp:
	$(ENV) exec python -m cli kfp compile --output-dir "$(OUTPUT_DIR)" $(ARGS)

kfp-submit:
	$(ENV) exec python -m cli kfp submit --output-dir "$(OUTPUT_DIR)" $(ARGS)

# The Kubeflow image (./Dockerfile) with buildah, inside the environment (which installs buildah).
REGISTRY ?=
image:
	$(ENV) exec bash tools/image.sh build

image-push:
	$(ENV) exec bash tools/image.sh push "$(REGISTRY)"

image-size:
	$(ENV) exec bash tools/image.sh size

lock:
	$(ENV) lock

clean:   # removes the run state under OUTPUT_DIR (default ./outputs)
	@case "$(OUTPUT_DIR)" in ""|/|.|..) echo "refusing to remove OUTPUT_DIR='$(OUTPUT_DIR)'" >&2; exit 2;; esac
	rm -rf "$(OUTPUT_DIR)"

# A real Flink session cluster on this machine (tools/cluster.sh: distribution from PyPI, Beam's job
# server from Maven, both cached); `beam_runner.py --profile flink` runs the Beam components on it.
flink-up:
	bash tools/cluster.sh flink up

flink-down:
	bash tools/cluster.sh flink down

run-flink:
	$(ENV) exec python beam_runner.py --profile flink --flink-master 127.0.0.1:$${FLINK_REST_PORT:-8081} --output-dir "$(OUTPUT_DIR)" $(DATA_OPT) $(STORE_OPT) $(ARGS)

# The same for Spark: a standalone master and two workers (tools/cluster.sh), `--profile spark` on it.
spark-up:
	bash tools/cluster.sh spark up

spark-down:
	bash tools/cluster.sh spark down

run-spark:
	$(ENV) exec python beam_runner.py --profile spark --spark-master spark://127.0.0.1:$${SPARK_MASTER_PORT:-7077} --spark-web-ui 127.0.0.1:$${SPARK_MASTER_WEBUI_PORT:-8080} --output-dir "$(OUTPUT_DIR)" $(DATA_OPT) $(STORE_OPT) $(ARGS)
