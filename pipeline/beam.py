"""Beam arguments: the direct runner's modes on this machine, and the runner profiles.

The Beam-powered components (ExampleGen, StatisticsGen, Transform, Evaluator) take these as their
`beam_pipeline_args`. Local runs use DirectBeam (`--beam-mode`, `--beam-workers`); beam_runner.py
picks a profile:

    direct      DirectRunner's FnApiRunner, in_memory, one worker (small data)
    direct-mp   the same, multi_processing with --beam-workers N (0: one per core)
    auto        direct or direct-mp chosen by input size (--beam-mode auto)
    flink       FlinkRunner on a Flink session cluster (--flink-master host:port, its REST address);
                SDK workers LOOPBACK for a cluster on this machine, else in --image
    spark       SparkRunner on a Spark standalone master (--spark-master spark://host:port) through
                Beam's Spark job server; SDK workers LOOPBACK for a master on this machine, else in --image
    dataflow    Google Cloud Dataflow (--project, --region, --temp-location gs://...), workers in --image

Every list is checked by Beam's own PipelineOptions parsing (and, for Dataflow, Beam's
PipelineOptionsValidator) before anything runs.
"""

import dataclasses
import os
import re
from pathlib import Path

from data import spans
from data.validate import DataError
from pipeline.config import ConfigError
from pipeline.locations import is_uri

BEAM_MODES = ("auto", "in_memory", "multi_processing")
# --beam-mode auto: multi_processing from this much CSV input on, in_memory below. Where the
# crossover lies, and how it was measured: benchmarks/README.md ("Beam mode crossover").
AUTO_MULTI_PROCESSING_BYTES = 64 * 1024 * 1024
BUNDLED_DATA_BYTES = 2 * 1024 * 1024  # data None: the bundled 15k rows


def input_bytes(data: str | None) -> int:
    """Size of the CSV input: what --beam-mode auto decides by.

    A remote URI's size is not measured here (0: auto stays in_memory); give --beam-mode for it.
    """
    if data is None:
        return BUNDLED_DATA_BYTES
    if is_uri(data):
        return 0
    # Span folders: the newest span's files, what a run's ExampleGen reads (data/spans.py). A layout
    # that does not check out is the data preflight's to report, in words, as are dangling links.
    try:
        found = spans.layout(data)
        folder = found.folder(found.newest)
    except DataError:
        folder = Path(data)
    return sum(p.stat().st_size for p in folder.glob("*.csv") if p.is_file())


@dataclasses.dataclass(frozen=True)
class DirectBeam:
    """Beam's DirectRunner on this machine: its running mode and worker count."""

    mode: str = "auto"
    workers: int = 0  # multi_processing: worker processes; 0: one per CPU core

    def __post_init__(self) -> None:
        if self.mode not in BEAM_MODES:
            raise ConfigError("beam_mode", f"must be one of {', '.join(BEAM_MODES)}")
        if self.workers < 0:
            raise ConfigError("beam_workers", f"must be 0 (one per core) or more, got {self.workers}")
        if self.mode == "in_memory" and self.workers > 1:
            raise ConfigError("beam_workers", "in_memory runs one worker; use --beam-mode multi_processing for more")

    def resolved_mode(self, data: str | None) -> str:
        """in_memory or multi_processing: the mode, with auto decided by the input's size."""
        if self.mode != "auto":
            return self.mode
        return "multi_processing" if input_bytes(data) >= AUTO_MULTI_PROCESSING_BYTES else "in_memory"

    def args(self, data: str | None = None) -> list[str]:
        # FnApiRunner, named: Beam 2.77's DirectRunner first tries Prism, a binary it downloads
        # at run time (nothing here can), and only then falls back to this same runner.
        mode = self.resolved_mode(data)
        workers = 1 if mode == "in_memory" else self.workers or os.cpu_count() or 1
        return ["--runner=FnApiRunner", f"--direct_running_mode={mode}", f"--direct_num_workers={workers}"]


# Beam's Flink job server: which Beam and Flink, defined once, by the Maven project that fetches it
# (tools/jobserver/pom.xml); tools/cluster.sh builds it into the cache, under this name.
JOB_SERVER_POM = Path(__file__).resolve().parent.parent / "tools" / "jobserver" / "pom.xml"
LOCAL_HOSTS = ("localhost", "127.0.0.1", "[local]", "[auto]")


def _pom_property(name: str) -> str:
    match = re.search(f"<{re.escape(name)}>([^<]+)</", JOB_SERVER_POM.read_text())
    if not match:
        raise ProfileError(f"{JOB_SERVER_POM}: no <{name}> property")
    return match.group(1)


def flink_version() -> str:
    """The Flink minor version (1.19) Beam's job server was built for: the cluster must run it."""
    return _pom_property("beam.flink.runner").removeprefix("beam-runners-flink-")


def cache_dir() -> Path:
    """The environment's cache (tools/env.sh's TFX_PIPELINE_CACHE), where the job server lies."""
    if os.environ.get("TFX_PIPELINE_CACHE"):
        return Path(os.environ["TFX_PIPELINE_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.environ.get("HOME") or "/tmp", ".cache")
    return Path(base) / "tfx-taxi-pipeline"


def flink_job_server_jar() -> Path:
    return (cache_dir() / "beam-job-server" / f"flink-{flink_version()}-{_pom_property('beam.java.version')}"
            / "job-server.jar")


# Beam's Spark job server (tools/jobserver/spark/pom.xml): built against the cluster's own Spark.
SPARK_JOB_SERVER_POM = JOB_SERVER_POM.parent / "spark" / "pom.xml"


def spark_version() -> str:
    """The Spark (3.5.7) of the local cluster's distribution, whose jars the job server runs on."""
    match = re.search(r"<spark.version>([^<]+)</", SPARK_JOB_SERVER_POM.read_text())
    if not match:
        raise ProfileError(f"{SPARK_JOB_SERVER_POM}: no <spark.version> property")
    return match.group(1)


def spark_job_server_jar() -> Path:
    return (cache_dir() / "beam-job-server" / f"spark-{spark_version()}-{_pom_property('beam.java.version')}"
            / "job-server.jar")


def is_local(address: str | None) -> bool:
    """A master on this machine: its SDK workers can be this process (LOOPBACK)."""
    host = re.sub(r"^[a-z]+://", "", address or "").rsplit(":", 1)[0] if address not in LOCAL_HOSTS else address
    return host in LOCAL_HOSTS or host.startswith("127.")


class ProfileError(ValueError):
    """A profile's options are incomplete or not Beam options."""


@dataclasses.dataclass(frozen=True)
class Profile:
    """A Beam runner as data: its fixed flags, the settings it needs, and whether it runs here."""

    name: str
    description: str
    flags: tuple[str, ...]  # fixed Beam flags
    settings: tuple[str, ...] = ()  # RunnerSettings fields that become flags, e.g. "job_endpoint"
    required: tuple[str, ...] = ()  # of those, the ones without which the profile cannot run
    runs_here: bool = False
    # The direct profiles: Beam flags from DirectBeam, as `run --beam-mode` gives them.
    beam_mode: str | None = None


# RunnerSettings field -> Beam flag.
SETTING_FLAGS = {
    "flink_master": "--flink_master",
    "spark_master": "--spark_master_url",
    "environment_type": "--environment_type",
    "image": "--environment_config",
    "parallelism": "--parallelism",
    "project": "--project",
    "region": "--region",
    "temp_location": "--temp_location",
}

PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile("auto", "direct or direct-mp by input size (--beam-mode auto)", (), runs_here=True,
                beam_mode="auto"),
        Profile("direct", "in-process FnApiRunner, one worker", (), runs_here=True, beam_mode="in_memory"),
        Profile("direct-mp", "FnApiRunner with N worker processes on this machine", (),
                runs_here=True, beam_mode="multi_processing"),
        Profile("flink", "a Flink session cluster; SDK workers LOOPBACK (local) or the project's image",
                ("--runner=FlinkRunner",), ("flink_master", "environment_type", "image", "parallelism"),
                ("flink_master",), runs_here=True),
        Profile("spark", "a Spark standalone master; SDK workers LOOPBACK (local) or the project's image",
                ("--runner=SparkRunner",), ("spark_master", "environment_type", "image"),
                ("spark_master",), runs_here=True),
        Profile("dataflow", "Google Cloud Dataflow; workers run the project's image",
                ("--runner=DataflowRunner",), ("project", "region", "temp_location", "image"),
                ("project", "region", "temp_location", "image")),
    )
}


@dataclasses.dataclass(frozen=True)
class RunnerSettings:
    """The values a profile's settings are filled from (command-line flags)."""

    flink_master: str | None = None
    spark_master: str | None = None
    environment_type: str | None = None  # None: LOOPBACK for a master on this machine, else DOCKER
    image: str | None = None
    parallelism: int | None = None
    project: str | None = None
    region: str | None = None
    temp_location: str | None = None
    extra: tuple[str, ...] = ()  # any further Beam flags, passed through


def profile_args(profile: str, settings: RunnerSettings, direct: "DirectBeam | None" = None,
                 data: str | None = None) -> list[str]:
    """The Beam flags of a profile, checked by Beam's own option parsing; raises ProfileError.

    `direct` and `data`: the auto profile's --beam-mode/--beam-workers and the input they are
    decided by.
    """
    if profile not in PROFILES:
        raise ProfileError(f"--profile: unknown profile {profile!r}; one of {', '.join(PROFILES)}")
    chosen = PROFILES[profile]
    if chosen.beam_mode == "auto":
        args = (direct or DirectBeam()).args(data)
    elif chosen.beam_mode:
        # --beam-workers (the run options' DirectBeam); --workers is the Trainer's.
        workers = direct.workers if direct is not None and chosen.beam_mode == "multi_processing" else 0
        args = DirectBeam(chosen.beam_mode, workers).args(data)
    else:
        missing = [name for name in chosen.required if getattr(settings, name) in (None, "")]
        if missing:
            raise ProfileError(
                f"profile {profile} needs " + ", ".join("--" + m.replace("_", "-") for m in missing))
        master = settings.flink_master if chosen.name == "flink" else settings.spark_master
        environment = settings.environment_type or ("LOOPBACK" if is_local(master) else "DOCKER")
        settings = dataclasses.replace(settings, environment_type=environment)
        if environment in ("DOCKER", "PROCESS", "EXTERNAL") and not settings.image and chosen.name != "dataflow":
            raise ProfileError(f"profile {profile} needs --image with --environment-type {environment} "
                               "(the worker image, or the worker pool address for EXTERNAL)")
        args = list(chosen.flags)
        if chosen.name == "flink":
            # Beam's own job server, never a download at run time: the jar tools/cluster.sh built.
            args += [f"--flink_version={flink_version()}", f"--flink_job_server_jar={flink_job_server_jar()}"]
            if settings.parallelism is None and is_local(master):
                # The local cluster's two one-slot TaskManagers (tools/cluster.sh): use both.
                settings = dataclasses.replace(settings, parallelism=2)
        if chosen.name == "spark":
            # The same for Spark; its parallelism is the cluster's cores (two one-core workers here).
            args += ["--spark_version=3", f"--spark_job_server_jar={spark_job_server_jar()}"]
            if is_local(master):
                # The job server is the Spark driver: on this machine it stays on 127.0.0.1 like the
                # cluster (by default Spark binds the host's first address).
                args += ["--job_server_jvm_property=-Dspark.driver.host=127.0.0.1",
                         "--job_server_jvm_property=-Dspark.driver.bindAddress=127.0.0.1"]
        for name in chosen.settings:
            value = getattr(settings, name)
            if value is not None:
                args.append(f"{SETTING_FLAGS[name]}={value}")
        if chosen.name == "dataflow":
            # Dataflow takes the worker image as --sdk_container_image, not --environment_config.
            args = [a.replace("--environment_config=", "--sdk_container_image=") for a in args]
    args += list(settings.extra)
    validate(args)
    return args


def validate(args: list[str]) -> None:
    """Raises ProfileError unless Beam's PipelineOptions knows every flag and (Dataflow) accepts them."""
    from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

    options = PipelineOptions(args)
    known = options.get_all_options()
    everything = options.get_all_options(retain_unknown_options=True)
    unknown = sorted(set(everything) - set(known))
    if unknown:
        raise ProfileError(f"not Beam pipeline options: {', '.join('--' + u for u in unknown)}")
    if options.view_as(StandardOptions).runner == "DataflowRunner":
        # Beam's own checks, the ones that need no network (its full validate() looks buckets up).
        from apache_beam.options.pipeline_options import GoogleCloudOptions, WorkerOptions
        from apache_beam.options.pipeline_options_validator import PipelineOptionsValidator

        validator = PipelineOptionsValidator(options, None)
        cloud = options.view_as(GoogleCloudOptions)
        errors = validator.validate_cloud_options(cloud) + validator.validate_gcs_path(cloud, "temp_location")
        errors += validator.validate_sdk_container_image_options(options.view_as(WorkerOptions))
        if errors:
            raise ProfileError("Dataflow options refused by Beam: " + "; ".join(e.strip() for e in errors))


def runs_here(profile: str) -> bool:
    return PROFILES[profile].runs_here


@dataclasses.dataclass(frozen=True)
class Check:
    ok: bool
    line: str


def flink_preflight(master: str, worker_pool: str | None = None) -> list[Check]:
    """What a Flink run needs, one line each: the master answers, runs a Flink that Beam and the
    job server accept, the job server jar is there, Java is there; and with EXTERNAL SDK workers,
    that their worker pool (`worker_pool`, host:port) answers. Asks the cluster's REST API."""
    import json
    import urllib.request

    from apache_beam.options.pipeline_options import FlinkRunnerOptions

    accepted = FlinkRunnerOptions.PUBLISHED_FLINK_VERSIONS

    url = master if re.match(r"^https?://", master) else f"http://{master}"
    wanted = flink_version()
    checks = []
    try:
        with urllib.request.urlopen(f"{url}/config", timeout=5) as answer:
            version = json.load(answer).get("flink-version", "?")
        checks.append(Check(True, f"Flink master {url} answers: Flink {version}"))
        minor = ".".join(version.split(".")[:2])
        fits = minor == wanted and minor in accepted
        checks.append(Check(fits, f"Flink {version} {'is' if fits else 'is not'} the Flink {wanted} that Beam's job "
                                  f"server here was built for (Beam accepts {', '.join(accepted)})"))
    except (OSError, ValueError) as error:
        reason = getattr(error, "reason", None) or error
        checks.append(Check(False, f"Flink master {url} does not answer ({reason}); `make flink-up` starts one here"))
    jar = flink_job_server_jar()
    checks.append(Check(jar.is_file(), f"Beam job server jar {jar} " + (
        "is present" if jar.is_file() else "is missing; `make flink-up` (or tools/cluster.sh flink jar) builds it")))
    if worker_pool:
        checks.append(pool_check(worker_pool))
    return checks + [java_check()]


def pool_check(address: str) -> Check:
    """An SDK worker pool (--environment-type EXTERNAL) accepts connections at host:port."""
    import socket

    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
        return Check(True, f"SDK worker pool {address} answers")
    except (OSError, ValueError) as error:
        return Check(False, f"SDK worker pool {address} does not answer ({getattr(error, 'strerror', None) or error}); "
                            "`make flink-up` starts one on 127.0.0.1:50000")


def java_check() -> Check:
    """Java, which Beam's job servers run on."""
    import shutil
    import subprocess

    java = shutil.which("java")
    if not java:
        return Check(False, "Java: no java on PATH (tools/debian.env installs one in the environment)")
    version = subprocess.run([java, "-version"], capture_output=True, text=True).stderr.splitlines()[:1]
    return Check(True, f"Java: {java} ({' '.join(version).strip()})")


def spark_web_ui(master: str, web_ui: str | None = None) -> str:
    """The master's web UI: given, or port 8080 on the master's host (Spark's default)."""
    if web_ui:
        return web_ui if re.match(r"^https?://", web_ui) else f"http://{web_ui}"
    host = re.sub(r"^spark://", "", master).rsplit(":", 1)[0]
    return f"http://{host}:8080"


def spark_preflight(master: str, web_ui: str | None = None) -> list[Check]:
    """What a Spark run needs, one line each: the master answers at its address, runs the Spark the
    job server's client is (read from its web UI), the job server jar is there, Java is there."""
    import socket
    import urllib.request

    checks = []
    match = re.match(r"^spark://([^:/]+):(\d+)$", master)
    if not match:
        return [Check(False, f"Spark master {master!r} is not spark://host:port")]
    try:
        socket.create_connection((match.group(1), int(match.group(2))), timeout=5).close()
        ui = spark_web_ui(master, web_ui)
        try:
            with urllib.request.urlopen(ui, timeout=5) as answer:
                page = answer.read().decode("utf-8", "replace")
            found = re.search(r'class="version"[^>]*>\s*([\d.]+)', page)
            version = found.group(1) if found else "?"
            checks.append(Check(True, f"Spark master {master} answers: Spark {version} (web UI {ui})"))
            wanted = spark_version()
            fits = version.split(".")[:2] == wanted.split(".")[:2]
            checks.append(Check(fits, f"Spark {version} {'is' if fits else 'is not'} the Spark {wanted} that Beam's "
                                      "job server here runs on (its client talks to that Spark only)"))
        except (OSError, ValueError) as error:
            checks.append(Check(False, f"Spark master {master} answers, but its web UI {ui} does not "
                                       f"({getattr(error, 'reason', None) or error}); --spark-web-ui names it"))
    except OSError as error:
        checks.append(Check(False, f"Spark master {master} does not answer ({error.strerror or error}); "
                                   "`make spark-up` starts one here"))
    jar = spark_job_server_jar()
    checks.append(Check(jar.is_file(), f"Beam job server jar {jar} " + (
        "is present" if jar.is_file() else "is missing; `make spark-up` (or tools/cluster.sh spark jar) builds it")))
    return checks + [java_check()]
