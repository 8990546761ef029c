"""TFX's sdist for Beam workers: what building it costs, and which Beam flags make TFX skip it.

    make exec CMD="python -m benchmarks.sdist_probe"

For each flag `tfx.utils.dependency_utils.make_beam_dependency_flags` treats as "dependencies
already given", prints the time the call takes and whether a small Beam pipeline still runs on
the FnApiRunner in_memory and multi_processing with it (see benchmarks/README.md, "TFX's sdist").
"""

import os
import tempfile
import time

import models
import apache_beam as beam
from tfx.utils import dependency_utils
empty = tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False); empty.close()
base = ["--runner=FnApiRunner"]
flags = {"none": [], "--requirements_file": [f"--requirements_file={empty.name}"],
         "--sdk_container_image": ["--sdk_container_image=unused"],
         "--setup_file": [f"--setup_file={os.path.abspath('pyproject.toml')}"],
         "--extra_packages": [f"--extra_packages={empty.name}"]}
for name, extra in flags.items():
    t = time.time(); out = dependency_utils.make_beam_dependency_flags(base + extra); dt = time.time() - t
    res = {}
    for mode in ("in_memory", "multi_processing"):
        args = base + [f"--direct_running_mode={mode}", "--direct_num_workers=2"] + extra
        try:
            t2 = time.time()
            with beam.Pipeline(argv=args) as p:
                _ = p | beam.Create(range(100)) | beam.Map(lambda x: x * 2) | beam.combiners.Count.Globally()
            res[mode] = f"ok {time.time()-t2:.2f}s"
        except Exception as e:
            res[mode] = f"FAIL {type(e).__name__}: {str(e)[:100]}"
    print(f"{name:24} make_beam_dependency_flags {dt:.2f}s added={[a for a in out if a not in base+extra]} {res}")
