"""TFLite export as plain functions: convert, check against the SavedModel, push atomically.

Nothing here knows about TFX (the executor adapts artifacts to these), so it is tested on a
small real model without running a pipeline. The converted model is checked on LiteRT
(`ai-edge-litert`), the runtime devices use, never on TensorFlow's own interpreter.
"""

import dataclasses
import json
import os
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter
from tensorflow.lite.tools import flatbuffer_utils

from components.tflite_export.options import MEASURES, QUANTIZATION_MODES
from models.device import DEVICE_CONTRACT_FILE, DEVICE_INPUTS_SIGNATURE, DEVICE_SIGNATURE

MODEL_FILE = "model.tflite"
METADATA_FILE = "metadata.json"
OUTPUT_KEY = "probabilities"
DECISION_THRESHOLD = 0.5  # agreement compares the decisions both models take

Converter = Callable[[str, str, Callable[[], Iterator[dict[str, np.ndarray]]]], bytes]


class ParityError(RuntimeError):
    """The TFLite model does not answer like the SavedModel."""


@dataclasses.dataclass
class Report:
    """What the export measured; every field becomes a custom property of the TFLiteModel."""

    quantization: str
    tflite_bytes: int
    saved_model_bytes: int
    saved_model_weights_bytes: int  # variables/: what quantization can shrink
    agreement: float
    max_abs_diff: float
    parity_examples: int
    tflite_latency_us: float
    saved_model_latency_us: float

    @property
    def size_ratio(self) -> float:
        """How many times smaller the TFLite file is than the SavedModel's weights."""
        return self.saved_model_weights_bytes / self.tflite_bytes

    @property
    def latency_ratio(self) -> float:
        return self.tflite_latency_us / self.saved_model_latency_us

    def as_dict(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in MEASURES}


def directory_bytes(path: str) -> int:
    return sum(
        tf.io.gfile.stat(os.path.join(root, name)).length
        for root, _, files in tf.io.gfile.walk(path)
        for name in files
    )


def device_inputs(saved_model: Any, examples: Sequence[bytes]) -> dict[str, np.ndarray]:
    """The device signature's inputs for these examples, from the model's own adapter."""
    out = saved_model.signatures[DEVICE_INPUTS_SIGNATURE](examples=tf.constant(list(examples)))
    return {key: value.numpy() for key, value in out.items()}


def convert(
    saved_model_dir: str, mode: str, representative: Callable[[], Iterator[dict[str, np.ndarray]]]
) -> bytes:
    """The device signature as a TFLite flatbuffer, builtin ops only, quantized by `mode`.

    int8 quantizes weights and activations with ranges from `representative`; ops with no int8
    kernel (string comparisons) stay float, and inputs/outputs stay float32 so the contract is
    the same in every mode.
    """
    if mode not in QUANTIZATION_MODES:
        raise ValueError(f"quantization must be one of {QUANTIZATION_MODES}, not {mode!r}")
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir, signature_keys=[DEVICE_SIGNATURE])
    # Builtin ops only: current LiteRT cannot run Select TF (Flex) ops.
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if mode != "none":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if mode == "int8":
        converter.representative_dataset = representative
    return converter.convert()


def custom_ops(tflite_model: bytes) -> list[str]:
    """Names of the non-builtin ops in a TFLite flatbuffer (must be empty)."""
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(tflite_model))
    return [
        code.customCode.decode() if isinstance(code.customCode, bytes) else str(code.customCode)
        for code in model.operatorCodes
        if code.customCode
    ]


def _runner(tflite_model: bytes):
    return Interpreter(model_content=tflite_model).get_signature_runner(DEVICE_SIGNATURE)


def _mean_latency_us(call: Callable[[int], Any], count: int) -> float:
    call(0)  # warm-up: first calls allocate and trace
    times = []
    for i in range(count):
        start = time.perf_counter()
        call(i)
        times.append(time.perf_counter() - start)
    return statistics.fmean(times) * 1e6


def compare(
    saved_model_dir: str,
    tflite_model: bytes,
    examples: Sequence[bytes],
    latency_examples: int = 200,
    loaded: Any = None,
) -> dict[str, float]:
    """Agreement, max |difference| and single-example latency of TFLite vs the SavedModel.

    The SavedModel answers through serving_default, as the server does (serialized tf.Examples);
    LiteRT gets the same examples in the device contract. Latency is per single-example call.
    """
    if not examples:
        raise ValueError("no examples to compare the TFLite model on")
    loaded = loaded or tf.saved_model.load(saved_model_dir)  # loading costs about a second
    serve = loaded.signatures["serving_default"]
    expected = serve(examples=tf.constant(list(examples)))[OUTPUT_KEY].numpy().reshape(-1)
    inputs = device_inputs(loaded, examples)
    runner = _runner(tflite_model)
    actual = runner(**inputs)[OUTPUT_KEY].reshape(-1)
    # NaN compares false with everything, so two NaN answers would "agree" and hide from the
    # max: a model answering anything but a number on an eval example is refused outright.
    odd = {name: np.flatnonzero(~np.isfinite(values)) for name, values in (("SavedModel", expected), ("TFLite", actual))}
    if any(len(rows) for rows in odd.values()):
        told = "; ".join(f"{name} on {len(rows)} (first: example {rows[0]}, {values[rows[0]]})"
                         for (name, rows), values in zip(odd.items(), (expected, actual)) if len(rows))
        raise ParityError(f"answers that are not numbers (NaN or infinite) on eval examples out of "
                          f"{len(examples)}: {told}; not exported")
    agree = (actual >= DECISION_THRESHOLD) == (expected >= DECISION_THRESHOLD)

    n = min(latency_examples, len(examples))
    single = [{k: v[i : i + 1] for k, v in inputs.items()} for i in range(n)]
    return {
        "agreement": float(agree.mean()),
        "max_abs_diff": float(np.abs(actual - expected).max()),
        "parity_examples": len(examples),
        "tflite_latency_us": _mean_latency_us(lambda i: runner(**single[i]), n),
        "saved_model_latency_us": _mean_latency_us(lambda i: serve(examples=tf.constant(examples[i : i + 1])), n),
    }


def export(
    saved_model_dir: str,
    mode: str,
    representative_examples: Sequence[bytes],
    parity_examples: Sequence[bytes],
    min_agreement: float,
    converter: Converter = convert,
) -> tuple[bytes, Report]:
    """Converts, checks on LiteRT, and returns the TFLite model with what was measured.

    Raises ParityError, with the figures, when fewer than `min_agreement` of the parity
    examples get the same decision from both models.
    """
    loaded = tf.saved_model.load(saved_model_dir)
    if DEVICE_SIGNATURE not in loaded.signatures:
        raise ValueError(
            f"{saved_model_dir} has no {DEVICE_SIGNATURE!r} signature (models/device.py adds it at export)"
        )
    rows = device_inputs(loaded, representative_examples)

    def representative() -> Iterator[dict[str, np.ndarray]]:
        for i in range(len(representative_examples)):
            yield {k: v[i : i + 1] for k, v in rows.items()}

    tflite_model = converter(saved_model_dir, mode, representative)
    if extra := custom_ops(tflite_model):
        raise ParityError(f"the converted model needs non-builtin ops LiteRT cannot run: {extra}")
    measured = compare(saved_model_dir, tflite_model, parity_examples, loaded=loaded)
    report = Report(
        quantization=mode,
        tflite_bytes=len(tflite_model),
        saved_model_bytes=directory_bytes(saved_model_dir),
        saved_model_weights_bytes=directory_bytes(os.path.join(saved_model_dir, "variables")),
        **measured,
    )
    if report.agreement < min_agreement:
        raise ParityError(
            f"TFLite ({mode}) agrees with the SavedModel on {report.agreement:.2%} of "
            f"{report.parity_examples} eval examples, below the required {min_agreement:.2%} "
            f"(max |difference| {report.max_abs_diff:.4f}); not exported"
        )
    return tflite_model, report


def write_twin(tflite_model: bytes, report: Report, saved_model_dir: str, directory: str) -> None:
    """Writes what a device build takes, as the Pusher publishes it beside the SavedModel:
    <directory>/{model.tflite, metadata.json (what was measured), device_contract.json}."""
    tf.io.gfile.makedirs(directory)
    with tf.io.gfile.GFile(os.path.join(directory, MODEL_FILE), "wb") as f:
        f.write(tflite_model)
    with tf.io.gfile.GFile(os.path.join(directory, METADATA_FILE), "w") as f:
        f.write(json.dumps(report.as_dict(), indent=2) + "\n")
    contract = os.path.join(saved_model_dir, "assets.extra", DEVICE_CONTRACT_FILE)
    if tf.io.gfile.exists(contract):
        tf.io.gfile.copy(contract, os.path.join(directory, DEVICE_CONTRACT_FILE), overwrite=True)


def load_runner(path: str):
    """A LiteRT signature runner for a pushed model file (what a device app would call)."""
    with tf.io.gfile.GFile(path, "rb") as f:
        return _runner(f.read())
