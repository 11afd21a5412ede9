"""Int8 with NNCF on OpenVINO, the path OpenVINO users take: `nncf.quantize` on the OpenVINO
model, calibrated on real data; optionally `nncf.quantize_with_accuracy_control`, which puts
layers back to fp32 until the top-1 drop on the validation split is within `max_drop`.

The model quantized is the parent's fp32 ONNX export (the same graph `ptq-ort-static`
quantizes), read by OpenVINO; the result is an OpenVINO IR run by the `openvino` runtime. The
defaults are NNCF's own (`subset_size` 300, preset chosen by NNCF, fast bias correction on), so
the `ptq-nncf` variant is NNCF's documented default path.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
from typing import ClassVar

import numpy as np

from optbench.config import Config, check_choice, check_positive
from optbench.data import make_loader
from optbench.errors import ConfigError
from optbench.transforms.base import Context, Variant, register
from optbench.transforms.export import fp32_onnx
from optbench.transforms.guard import Int8Guard, check_int8


@dataclasses.dataclass(frozen=True)
class NncfQuantConfig(Config):
    method: ClassVar[str] = "ptq-nncf"
    takes_onnx: ClassVar[bool] = True     # works on an .onnx starting point
    subset_size: int = 300               # calibration images (NNCF's default)
    preset: str = "default"              # default (NNCF picks) | performance | mixed
    # default: NNCF's activation ranges (the mean over images of each image's min and max);
    # minmax: the extremes over all images. The default clips values that only some images
    # reach: on a synthetic set whose classes differ by background level it clipped the
    # negative backgrounds to 0 and lost 28 points; minmax lost none.
    calibrate_method: str = "default"
    fast_bias_correction: bool = True    # False: NNCF's slower, fuller bias correction
    max_drop: float | None = None        # top-1 points; set = accuracy-aware (needs val_data)
    validation_examples: int = 1000      # val images the accuracy-aware search evaluates on
    opset: int = 18
    guard: Int8Guard = Int8Guard()

    def __post_init__(self):
        check_positive("NncfQuantConfig", subset_size=self.subset_size,
                       validation_examples=self.validation_examples)
        check_choice("NncfQuantConfig", "preset", self.preset,
                     ("default", "performance", "mixed"))
        check_choice("NncfQuantConfig", "calibrate_method", self.calibrate_method,
                     ("default", "minmax"))
        if self.max_drop is not None and not 0 <= self.max_drop < 100:
            raise ConfigError(f"NncfQuantConfig.max_drop is a top-1 drop in points, in "
                              f"[0, 100); got {self.max_drop}")


@register(NncfQuantConfig)
def quantize_nncf(parent: Variant, config: NncfQuantConfig, ctx: Context) -> Variant:
    from optbench.runtime.openvino import import_openvino, read_model

    ov = import_openvino()   # before nncf imports it (the allocator fix)
    try:
        import nncf
    except ImportError:
        from optbench.errors import RuntimeUnavailableError
        from optbench.runtime.openvino import INSTALL_HINT

        raise RuntimeUnavailableError(f"method 'ptq-nncf' needs NNCF; {INSTALL_HINT}"
                                      ) from None
    data = ctx.require("calib_data", config.method)
    model = read_model(fp32_onnx(ctx, parent, config.opset))
    # NNCF takes the first subset_size items, one image each (its documented usage)
    calibration = nncf.Dataset(make_loader(data, 1), _images)
    kwargs = {"subset_size": config.subset_size,
              "fast_bias_correction": config.fast_bias_correction}
    if config.preset != "default":
        kwargs["preset"] = getattr(nncf.QuantizationPreset, config.preset.upper())
    if config.calibrate_method == "minmax":
        from nncf.quantization.range_estimator import RangeEstimatorParametersSet

        kwargs["advanced_parameters"] = nncf.AdvancedQuantizationParameters(
            activations_range_estimator_params=RangeEstimatorParametersSet.MINMAX)
    info: dict = {"int8": True, "preset": config.preset,
                  "calibrate_method": config.calibrate_method}
    with _quiet():
        if config.max_drop is None:
            quantized = nncf.quantize(model, calibration, **kwargs)
            name = "ptq-nncf" + ("" if config.calibrate_method == "default" else "-minmax")
        else:
            val = ctx.require("val_data", f"{config.method} with max_drop")
            batches = -(-config.validation_examples // 100)
            validation = nncf.Dataset(list(itertools.islice(make_loader(val, 100), batches)),
                                      _images)
            if "advanced_parameters" in kwargs:   # the two functions name it differently
                kwargs["advanced_quantization_parameters"] = kwargs.pop("advanced_parameters")
            quantized = nncf.quantize_with_accuracy_control(
                model, calibration, validation, _top1, max_drop=config.max_drop / 100,
                drop_type=nncf.DropType.ABSOLUTE, **kwargs)
            name = f"ptq-nncf-aa{config.max_drop:g}"
    ops, fp32_layers = ir_int8_ops(quantized)
    info.update(ops=ops, fp32_layers=fp32_layers)
    if config.max_drop is not None:
        info["max_drop_points"] = config.max_drop
    out = ctx.file(parent, f"{name}.xml")
    ov.save_model(quantized, str(out), compress_to_fp16=False)
    variant = parent.derive(name, ir_path=out, runtimes=("openvino",), info=info)
    check_int8(parent, variant, data, config.guard)
    return variant


def _images(item) -> np.ndarray:
    images, _ = item
    return images.numpy().astype(np.float32)


def _top1(compiled, items) -> tuple[float, list[float]]:
    """nncf's validation_fn: top-1 over the validation items, and per item (a batch)."""
    per_item, correct, total = [], 0, 0
    for images, labels in items:
        logits = compiled(images.numpy().astype(np.float32))[0]
        hits = int((np.argmax(logits, axis=1) == labels.numpy()).sum())
        per_item.append(hits / len(labels))
        correct, total = correct + hits, total + len(labels)
    return correct / total, per_item


def ir_int8_ops(model) -> tuple[dict[str, int], list[str]]:
    """Conv/matmul layers of an OpenVINO model as the CPU plugin compiles them here, and how
    many run int8 kernels (runtime precision u8/i8); the names of those left in fp32. What ran,
    read from the compiled model: a FakeQuantize in the IR does not say whether the plugin
    fused it into an int8 kernel."""
    from optbench.runtime.openvino import COMPUTE_LAYERS, import_openvino

    ov = import_openvino()
    compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    counts = {"conv": 0, "int8_conv": 0, "matmul": 0}
    fp32 = []
    for op in compiled.get_runtime_model().get_ops():
        info = op.get_rt_info()
        kind = str(info["layerType"].astype(str))
        if kind not in COMPUTE_LAYERS:
            continue
        int8 = str(info["runtimePrecision"].astype(str)) in ("u8", "i8")
        if kind in ("Convolution", "GroupConvolution"):
            counts["conv"] += 1
            counts["int8_conv"] += int8
        else:
            counts["matmul"] += 1
        if not int8:
            fp32.append(op.get_friendly_name())
    counts["fp32_conv"] = counts["conv"] - counts["int8_conv"]
    return counts, fp32


class _quiet:
    """NNCF logs progress bars and INFO lines; keep warnings."""

    def __init__(self):
        self.logger = logging.getLogger("nncf")

    def __enter__(self):
        self.level = self.logger.level
        self.logger.setLevel(logging.WARNING)

    def __exit__(self, *exc):
        self.logger.setLevel(self.level)
