"""Contract tests: every registered method returns a new variant, leaves its input alone, runs,
and meets an accuracy floor on a tiny model trained on learnable synthetic data."""

import copy
import dataclasses
import os
import subprocess
import sys
import tomllib
import warnings
from pathlib import Path

import pytest
import torch
from conftest import TinyNet

from optbench.config import to_toml
from optbench.data import make_loader
from optbench.errors import ConfigError, MissingInputError
from optbench.measure import collect_logits, model_size, top1_accuracy
from optbench.runtime import get_runtime
from optbench.runtime.base import predict
from optbench.train import TrainConfig, evaluate
from optbench.transforms import (
    Context,
    Variant,
    config_from_dict,
    config_to_dict,
    method_names,
    optimize,
)

SHORT = {"epochs": 1, "batch_size": 32, "lr": 0.01, "max_steps_per_epoch": 8}
CASES = {  # method -> (config fields, allowed top-1 drop vs the fp32 model)
    "prune-unstructured": ({"ratio": 0.3}, 0.10),
    "prune-structured": ({"ratio": 0.25, "round_to": 4, "finetune": SHORT}, 0.15),
    "ptq-pt2e": ({"calibration_batches": 4}, 0.05),
    "ptq-ort-static": ({"calibration_batches": 4}, 0.05),
    "ptq-ort-dynamic": ({}, 0.05),
    # minmax: NNCF's default ranges clip this synthetic set's class-coding backgrounds
    "ptq-nncf": ({"subset_size": 128, "calibrate_method": "minmax"}, 0.05),
    # teacher-guided recovery: distills from ctx.teacher (the fp32 model here)
    "qat-pt2e": ({"train": SHORT, "teacher": "fp32"}, 0.10),
    "distill": ({"train": {**SHORT, "lr": 0.005}}, 0.10),
    "reduced-precision": ({"dtype": "bfloat16"}, 0.05),
    "export-onnx": ({"parity_examples": 256}, 0.0),
    "train": ({"train": SHORT}, 0.10),
}


@pytest.fixture(scope="module")
def trained(trained_tiny):
    return trained_tiny


@pytest.fixture(scope="module")
def ctx(synthetic, trained, tmp_path_factory):
    return Context(example_input=synthetic.batch(0, 4), calib_data=synthetic,
                   train_data=synthetic, val_data=synthetic, teacher=trained,
                   workdir=tmp_path_factory.mktemp("work"), progress=False)


def test_every_registered_method_has_a_contract_case():
    assert sorted(CASES) == method_names()


@pytest.mark.parametrize("method", sorted(CASES))
def test_method_contract(method, trained, ctx, synthetic):
    fields, allowed_drop = CASES[method]
    config = config_from_dict({"method": method, **fields})
    before = copy.deepcopy(trained.state_dict())
    ctx.step = method
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        variant = optimize(trained, config, ctx)
    assert variant.model is not trained
    for key, value in trained.state_dict().items():  # input left untouched
        assert torch.equal(value, before[key]), key
    runtime = get_runtime(variant.runtimes[0])
    session = runtime.load(variant.artifact(runtime.accepts), example=ctx.example(2))
    assert predict(session, synthetic.batch(0, 3)).shape == (3, 10)
    logits, labels = collect_logits(lambda x: predict(session, x), make_loader(synthetic, 128))
    fp32 = evaluate(trained, synthetic)
    assert top1_accuracy(logits, labels) >= fp32 - allowed_drop
    assert variant.info["method"] == method


@pytest.mark.parametrize("method", sorted(CASES))
def test_every_config_round_trips_through_toml(method):
    config = config_from_dict({"method": method, **CASES[method][0]})
    text = to_toml(config_to_dict(config))
    assert config_from_dict(tomllib.loads(text)) == config


def test_unknown_method_and_field_are_explained():
    with pytest.raises(ConfigError, match="registered methods are .*ptq-pt2e"):
        config_from_dict({"method": "prune-magic"})
    with pytest.raises(ConfigError, match="unknown field.*'rate'.*allowed fields.*ratio"):
        config_from_dict({"method": "prune-structured", "rate": 0.5})
    with pytest.raises(ConfigError, match="calibrate_method must be one of"):
        config_from_dict({"method": "ptq-ort-static", "calibrate_method": "mse"})
    with pytest.raises(ConfigError, match="scope must be one of"):
        config_from_dict({"method": "prune-structured", "scope": "network"})
    with pytest.raises(ConfigError, match="max_layer_ratio must lie in"):
        config_from_dict({"method": "prune-structured", "scope": "global", "max_layer_ratio": 1})


def test_missing_context_names_what_to_pass(trained, tmp_path):
    with pytest.raises(MissingInputError, match="calib_data"):
        optimize(trained, config_from_dict({"method": "ptq-pt2e"}),
                 Context(example_input=torch.randn(2, 1, 16, 16), workdir=tmp_path))


def test_unstructured_report_says_no_speedup_and_gzip_shrinks(trained, ctx):
    variant = optimize(trained, config_from_dict({"method": "prune-unstructured", "ratio": 0.6}),
                       ctx)
    assert variant.info["sparsity"]["global"] == pytest.approx(0.6, abs=0.01)
    assert "does not make dense kernels faster" in variant.info["note"]
    assert model_size(variant.model).gzip_bytes < model_size(trained).gzip_bytes


def test_structured_pruning_removes_rounded_channels(trained, ctx):
    variant = optimize(trained, config_from_dict({"method": "prune-structured", "ratio": 0.5,
                                                  "round_to": 4}), ctx)
    channels = variant.info["channels"]
    assert channels["features.0"] < 8 or channels["features.4"] < 16
    assert all(c % 4 == 0 for c in channels.values())
    assert variant.info["params_after"] < variant.info["params_before"]
    assert variant.model.fc.out_features == 10  # the classifier keeps its classes


@pytest.mark.parametrize("rounding, kept", [("nearest", 12), ("down", 8)])
def test_structured_pruning_rounds_kept_channels_to_the_nearest_multiple(trained, ctx, rounding,
                                                                         kept):
    """30% of 16 channels at round_to 4 keeps 11.2: the nearest multiple is 12, while
    Torch-Pruning's own rounding (down) keeps 8, removing 50% where 30% was asked."""
    variant = optimize(trained, config_from_dict({"method": "prune-structured", "ratio": 0.3,
                                                  "round_to": 4, "rounding": rounding}), ctx)
    assert variant.info["channels"]["features.4"] == kept
    assert variant.info["rounding"] == rounding


def test_layer_ratios_set_each_modules_cut(trained, ctx):
    """`layer_ratios` overrides `ratio` for the convs inside a named module: the first conv
    keeps all 8 channels (0), the second loses half of its 16 (0.5), not 25% of each."""
    config = config_from_dict({"method": "prune-structured", "ratio": 0.25, "round_to": 2,
                               "layer_ratios": {"features.0": 0.0, "features.4": 0.5}})
    assert config_from_dict(tomllib.loads(to_toml(config_to_dict(config)))) == config
    variant = optimize(trained, config, ctx)
    assert variant.info["channels"] == {"features.0": 8, "features.4": 8}
    plain = optimize(trained, config_from_dict({"method": "prune-structured", "ratio": 0.25,
                                                "round_to": 2}), ctx)
    assert plain.info["channels"] == {"features.0": 6, "features.4": 12}


def test_layer_ratios_refuse_unknown_modules_bad_ratios_and_other_scopes(trained, ctx):
    with pytest.raises(ConfigError, match=r"layer_ratios names unknown modules \['layer9'\]"):
        optimize(trained, config_from_dict({"method": "prune-structured",
                                            "layer_ratios": {"layer9": 0.5}}), ctx)
    with pytest.raises(ConfigError, match=r"ratios must lie in \[0, 1\)"):
        config_from_dict({"method": "prune-structured", "layer_ratios": {"features.4": 1.0}})
    with pytest.raises(ConfigError, match="works with scope = \"layer\""):
        config_from_dict({"method": "prune-structured", "scope": "global",
                          "layer_ratios": {"features.4": 0.5}})
    with pytest.raises(ConfigError, match="quote a dotted module name"):
        config_from_dict(tomllib.loads('method = "prune-structured"\n'
                                       "layer_ratios = { features.4 = 0.5 }"))
    with pytest.raises(ConfigError, match="maps module names to ratios"):
        config_from_dict({"method": "prune-structured", "layer_ratios": [0.5]})


@pytest.mark.parametrize("scope, kept", [("layer", (6, 12)), ("global", (8, 10))])
def test_global_structured_pruning_takes_the_weakest_channels_of_the_whole_network(
        trained, ctx, scope, kept):
    """Half of the second conv's 16 filters made near-zero: removing 25% of the 24 channels,
    a global ranking takes 6 of those and leaves the first conv whole, where per-layer pruning
    takes 25% of each layer."""
    weak = copy.deepcopy(trained)
    with torch.no_grad():
        weak.features[4].weight[:8] *= 1e-3
        weak.features[4].bias[:8] *= 1e-3
        weak.fc.weight[:, :8] *= 1e-3
    variant = optimize(weak, config_from_dict({"method": "prune-structured", "ratio": 0.25,
                                               "round_to": 1, "scope": scope,
                                               "recalibrate_bn": 0}), ctx)
    channels = variant.info["channels"]
    assert (channels["features.0"], channels["features.4"]) == kept
    assert variant.info["scope"] == scope


def test_structured_pruning_re_estimates_batchnorm_statistics(trained, ctx, synthetic):
    """Pruning changes the statistics BatchNorm sees; the pruned model's running statistics are
    re-estimated on the calibration data (here made stale on purpose), unless turned off."""
    stale = copy.deepcopy(trained)
    stale.features[1].running_mean += 5.0
    stale.features[1].running_var *= 30.0
    fresh = optimize(stale, config_from_dict({"method": "prune-structured", "ratio": 0.25,
                                              "round_to": 4, "importance": "bn"}), ctx)
    kept = fresh.model.features[0]
    with torch.no_grad():
        out = torch.cat([kept(x) for x, _ in make_loader(synthetic, 128)])
    mean, var = out.mean((0, 2, 3)), out.var((0, 2, 3))
    bn = fresh.model.features[1]
    assert fresh.info["bn_recalibrated"] >= 512
    assert torch.allclose(bn.running_mean, mean, atol=0.05 * float(var.sqrt().max()))
    assert torch.allclose(bn.running_var, var, rtol=0.2)
    assert fresh.info["val_accuracy_pruned"] > 0.5
    assert bn.momentum == trained.features[1].momentum   # left as training expects it
    off = optimize(stale, config_from_dict({"method": "prune-structured", "ratio": 0.25,
                                            "round_to": 4, "recalibrate_bn": 0}), ctx)
    assert "bn_recalibrated" not in off.info
    assert (off.model.features[1].running_mean > 4.0).all()
    assert off.info["val_accuracy_pruned"] < fresh.info["val_accuracy_pruned"]


def test_structured_pruning_leaves_a_training_mode_input_as_it_was(trained, ctx):
    """A model fresh from its constructor is in training mode; checking the pruned model's
    output against it must neither update its BatchNorm statistics nor change its mode."""
    model = copy.deepcopy(trained).train()
    before = copy.deepcopy(model.state_dict())
    optimize(model, config_from_dict({"method": "prune-structured", "ratio": 0.25,
                                      "round_to": 4}), ctx)
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_pt2e_int8_keeps_no_fp32_weights(trained, ctx):
    variant = optimize(trained, config_from_dict({"method": "ptq-pt2e",
                                                  "calibration_batches": 2}), ctx)
    size = model_size(variant.model)
    assert variant.info["ops"]["fp32_compute_ops"] == 0
    assert size.dtype_bytes.get("int8", 0) > 0
    assert size.dtype_bytes.get("float32", 0) < 0.5 * model_size(trained).dtype_bytes["float32"]


def test_a_pt2e_model_reaches_a_worker_process_still_int8(trained, ctx):
    """Timing in fresh processes sends each model by pickle (bench.Entry). Pickling a PT2E
    GraphModule re-traces it and folds each int8 weight's dequantize into an fp32 constant, so
    the model the workers timed ran at fp32 speed; an Entry sends it as a torch.export program,
    which keeps the int8 weights and their dequantize nodes."""
    import pickle

    from optbench.bench import Entry

    variant = optimize(trained, config_from_dict({"method": "ptq-pt2e",
                                                  "calibration_batches": 2}), ctx)

    def weight_dequantizes(gm):
        return sum("dequantize_per_channel" in str(n.target) for n in gm.graph.nodes)

    payload = pickle.dumps(Entry("v", "torch-compile", variant.model))
    sent = pickle.loads(payload).artifact
    assert weight_dequantizes(sent) == weight_dequantizes(variant.model) > 0
    # as a worker process receives it, in a fresh interpreter: the program loads, and the
    # compile runtime registers torchao's int8 lowerings before compiling (without them
    # Inductor dequantizes every weight in every call)
    lowering = "torchao.quantization.pt2e.inductor_passes.x86"
    script = ("import pickle, sys, torch; e = pickle.loads(sys.stdin.buffer.read()); "
              "print(sum('dequantize_per_channel' in str(n.target) "
              "for n in e.artifact.graph.nodes)); "
              f"print({lowering!r} in sys.modules); "
              "from optbench.runtime import get_runtime; "
              "get_runtime('torch-compile').load(e.artifact, example=torch.zeros(2, 1, 16, 16)); "
              f"print({lowering!r} in sys.modules)")
    fresh = subprocess.run([sys.executable, "-c", script], input=payload, capture_output=True,
                           check=True,
                           env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])})
    dequantizes, before, after = fresh.stdout.decode().split()[-3:]
    assert int(dequantizes) == weight_dequantizes(variant.model)
    assert (before, after) == ("False", "True")
    assert weight_dequantizes(pickle.loads(pickle.dumps(variant.model))) == 0   # the trap
    x = ctx.example(4)
    assert torch.equal(sent(x), variant.model(x))
    assert model_size(sent).dtype_bytes.get("int8", 0) > 0


def test_ort_static_quantizes_every_conv_with_uint8_activations(trained, ctx):
    variant = optimize(trained, config_from_dict({"method": "ptq-ort-static",
                                                  "calibration_batches": 2}), ctx)
    assert variant.info["ops"]["fp32_conv"] == 0 and variant.info["ops"]["conv"] == 2


def test_ort_static_int8_file_runs_in_int8_on_openvino_too(trained, ctx, synthetic):
    """The QDQ file is timed on OpenVINO as well: OpenVINO must run its convs in int8 (not
    dequantize them back to fp32) and predict what ONNX Runtime predicts."""
    from optbench.transforms.quantize_nncf import ir_int8_ops

    ctx.step = "ort-on-openvino"
    variant = optimize(trained, config_from_dict({"method": "ptq-ort-static",
                                                  "calibration_batches": 2}), ctx)
    assert variant.runtimes == ("onnxruntime", "openvino")
    path = variant.artifact_for("openvino")
    ops, fp32 = ir_int8_ops(str(path))   # as the CPU plugin compiled it: u8/i8 kernels
    assert ops["conv"] > 0 and ops["fp32_conv"] == 0, fp32
    loader = make_loader(synthetic, 128)
    preds = {}
    for runtime in variant.runtimes:
        session = get_runtime(runtime).load(path, example=ctx.example(2))
        logits, labels = collect_logits(lambda x, s=session: predict(s, x), loader)
        preds[runtime] = logits.argmax(1)
    agree = float((preds["onnxruntime"] == preds["openvino"]).mean())
    assert agree >= 0.95, agree


def test_ort_static_keeps_only_the_classifier_in_fp32(trained, ctx):
    import onnx

    ctx.step = "ort-classifier"
    variant = optimize(trained, config_from_dict({"method": "ptq-ort-static",
                                                  "calibration_batches": 2}), ctx)
    assert len(variant.info["fp32_nodes"]) == 1
    graph = onnx.load(str(variant.onnx_path)).graph
    producers = {o: n.op_type for n in graph.node for o in n.output}
    gemm = next(n for n in graph.node if n.name == variant.info["fp32_nodes"][0])
    assert producers.get(gemm.input[1]) != "DequantizeLinear"  # fp32 weight, not int8
    ctx.step = "ort-classifier-int8"
    all_int8 = optimize(trained, config_from_dict({"method": "ptq-ort-static",
                                                   "calibration_batches": 2,
                                                   "keep_classifier_fp32": False}), ctx)
    assert all_int8.info["fp32_nodes"] == []


def test_dynamic_int8_on_convs_warns(trained, ctx):
    with pytest.warns(UserWarning, match="conv nets"):
        variant = optimize(trained, config_from_dict({"method": "ptq-ort-dynamic"}), ctx)
    assert variant.info["warnings"]


def test_failed_parity_is_an_error_with_the_numbers(trained, ctx):
    from optbench.transforms.export import ParityError

    config = config_from_dict({"method": "export-onnx", "parity_examples": 64,
                               "max_abs_diff": 0.0, "max_rel_diff": 0.0})
    ctx.step = "strict-export"
    with pytest.raises(ParityError, match=r"max \|diff\|.*max_rel_diff.*Raise"):
        optimize(trained, config, ctx)


def test_parity_bar_grows_with_the_logits(trained, synthetic, tmp_path):
    """float32 rounding grows with the logits: a net whose logits reach thousands (a diverged
    teacher after a few steps at a high lr had 4,490, and differed from ONNX Runtime by 0.002)
    is held to max_rel_diff x its largest |logit|, not to the absolute 1e-3 alone."""
    from optbench.transforms.export import ExportOnnxConfig, export_onnx, parity_check

    model = copy.deepcopy(trained).eval()
    with torch.no_grad():
        model.fc.weight.mul_(1e4)
        model.fc.bias.mul_(1e4)
    path = export_onnx(model, synthetic.batch(0, 2), tmp_path / "loud.onnx")
    result = parity_check(model, path, synthetic, ExportOnnxConfig(parity_examples=64))
    assert result["max_abs_logit"] > 1e3
    assert result["allowed_abs_diff"] == pytest.approx(1e-5 * result["max_abs_logit"])
    assert result["max_abs_diff"] <= result["allowed_abs_diff"]
    plain = export_onnx(trained, synthetic.batch(0, 2), tmp_path / "plain.onnx")
    small = parity_check(trained, plain, synthetic, ExportOnnxConfig(parity_examples=64))
    assert small["max_abs_logit"] < 100 and small["allowed_abs_diff"] == 1e-3


def test_kd_loss_closed_form():
    from optbench.transforms.distill import kd_loss

    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    labels = torch.tensor([0, 1])
    ce = torch.nn.functional.cross_entropy(logits, labels)
    assert kd_loss(logits, logits, labels, 4.0, 0.0) == pytest.approx(ce.item())
    assert kd_loss(logits, logits, labels, 4.0, 1.0).item() == pytest.approx(0.0, abs=1e-7)


def test_a_fresh_student_learns_from_the_teacher(trained, synthetic, tmp_path):
    from optbench.transforms.distill import DistillConfig, distill

    torch.manual_seed(1)
    student = TinyNet()
    before = evaluate(student, synthetic)
    config = DistillConfig(temperature=2.0, alpha=0.7,
                           train=TrainConfig(epochs=5, batch_size=32, lr=0.05, seed=3))
    distill(student, trained, synthetic, config, progress=False)
    assert evaluate(student, synthetic) > max(0.6, before + 0.3)


def test_distillation_teaches_on_the_augmented_view(trained, synthetic):
    """With augmentation the teacher scores each batch the student sees (no cached logits of
    the plain images); pruning's fine-tuning distills the same way when it names a teacher."""
    from optbench.augment import AugmentConfig
    from optbench.transforms.distill import DistillConfig, distill

    seen = {"teacher": [], "student": []}

    class Recording(torch.nn.Module):
        def __init__(self, model, who):
            super().__init__()
            self.model, self.who = model, who

        def forward(self, x):
            seen[self.who].append(x.clone())
            return self.model(x)

    augment = AugmentConfig(crop_padding=2, hflip=True)
    config = DistillConfig(train=TrainConfig(epochs=1, batch_size=32, max_steps_per_epoch=2,
                                             augment=augment))
    distill(Recording(TinyNet(), "student"), Recording(trained, "teacher"), synthetic, config,
            progress=False)
    assert len(seen["teacher"]) == len(seen["student"]) == 2
    assert all(torch.equal(t, s) for t, s in zip(seen["teacher"], seen["student"], strict=True))
    assert not any(torch.equal(s, synthetic.batch(0, 32)) for s in seen["student"])


@pytest.mark.parametrize("augment", [False, True])   # cached logits / the teacher per batch
def test_teacher_precision_reaches_the_teacher_that_distills(trained, synthetic, augment):
    """distill()'s teacher_precision is the precision its frozen teacher runs in, whether the
    logits are cached (no augmentation) or the teacher scores every batch (pruning's and QAT's
    fine-tunes hand their `kd` to the same teacher_guided_loss)."""
    import copy
    import warnings

    from optbench.augment import AugmentConfig
    from optbench.transforms import distill as distill_module

    teacher = copy.deepcopy(trained)   # a cache of its own
    config = distill_module.DistillConfig(
        teacher_precision="bf16", train=TrainConfig(
            epochs=1, batch_size=32, max_steps_per_epoch=2,
            augment=AugmentConfig(hflip=augment)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # emulated-bf16 warning on CPUs without it
        distill_module.distill(TinyNet(), teacher, synthetic, config, progress=False)
    assert list(distill_module._TEACHERS[teacher]) == [("torch-eager", "cpu", "bf16")]


def test_a_compiled_teacher_teaches_the_same_and_compiles_once(trained, synthetic):
    """teacher_runtime="torch-compile": the students match the eager teacher's (the logits
    differ by float rounding only), and a second step distilling from the same teacher in the
    same process reuses its compile."""
    from optbench.augment import AugmentConfig
    from optbench.runtime.torch import dynamo_counts
    from optbench.transforms.distill import DistillConfig, distill

    train_config = TrainConfig(epochs=1, batch_size=32, max_steps_per_epoch=3, seed=3,
                               augment=AugmentConfig(hflip=True))
    students = {}
    for runtime in ("torch-eager", "torch-compile", "torch-compile"):
        torch.manual_seed(1)
        student = TinyNet()
        before = dynamo_counts()["graphs"]
        distill(student, trained, synthetic,
                DistillConfig(teacher_runtime=runtime, train=train_config), progress=False)
        students.setdefault(runtime, []).append((student, dynamo_counts()["graphs"] - before))
    (eager, _), = students["torch-eager"]
    (first, compiles), (second, again) = students["torch-compile"]
    assert compiles >= 1 and again == 0
    for model in (first, second):
        for a, b in zip(eager.state_dict().values(), model.state_dict().values(), strict=True):
            assert torch.allclose(a.float(), b.float(), atol=1e-4)
    with pytest.raises(ConfigError, match="teacher_runtime.*torch-compile"):
        DistillConfig(teacher_runtime="openvino")


def test_an_onnx_teacher_teaches_what_its_file_computes(trained, ctx, synthetic):
    """teacher_runtime="onnxruntime" runs a teacher step's ONNX file: the fp32 export teaches
    as the module does (its logits differ by float rounding only); an int8 one teaches with
    the int8 file's own logits, not the fp32 module's."""
    from optbench.augment import AugmentConfig
    from optbench.transforms.distill import DistillConfig, distill, frozen_teacher

    parent = Variant("teacher", model=trained)
    fp32 = optimize(parent, config_from_dict({"method": "export-onnx"}), ctx)
    int8 = optimize(parent, config_from_dict({"method": "ptq-ort-static"}), ctx)
    images = synthetic.batch(0, 16)
    module_logits = frozen_teacher(trained)(images)
    onnx_logits = frozen_teacher(fp32, "onnxruntime")(images)
    int8_logits = frozen_teacher(int8, "onnxruntime")(images)
    assert torch.allclose(onnx_logits, module_logits, atol=1e-4)
    assert not torch.allclose(int8_logits, module_logits, atol=1e-3)
    session = get_runtime("onnxruntime").load(int8.onnx_path)
    assert torch.allclose(int8_logits, torch.from_numpy(session.to_numpy(
        session.run(session.prepare(images)))), atol=1e-6)
    train_config = TrainConfig(epochs=1, batch_size=32, max_steps_per_epoch=3, seed=3,
                               augment=AugmentConfig(hflip=True))
    students = []
    for teacher, runtime in ((trained, "torch-eager"), (fp32, "onnxruntime")):
        torch.manual_seed(1)
        students.append(TinyNet())
        distill(students[-1], teacher, synthetic,
                DistillConfig(teacher_runtime=runtime, train=train_config), progress=False)
    for a, b in zip(*(s.state_dict().values() for s in students), strict=True):
        assert torch.allclose(a.float(), b.float(), atol=1e-4)


def test_a_teacher_on_a_runtime_it_cannot_run_is_explained(trained, ctx):
    from optbench.transforms.distill import frozen_teacher

    int8 = optimize(Variant("teacher", model=trained),
                    config_from_dict({"method": "ptq-ort-static"}), ctx)
    with pytest.raises(ConfigError, match="cannot run on teacher_runtime 'torch-compile'.*"
                                          "onnxruntime"):
        frozen_teacher(int8, "torch-compile")
    with pytest.raises(ConfigError, match="torch module.*export-onnx"):
        frozen_teacher(trained, "onnxruntime")
    with pytest.raises(ConfigError, match="runs as it is stored"):
        frozen_teacher(int8, "onnxruntime", precision="bf16")


def test_a_teacher_changed_in_place_is_frozen_again(trained, synthetic):
    """The shared frozen copy follows the teacher: after its weights change in place (more
    training, a load_state_dict) the next step gets the new teacher, not the old copy."""
    import copy

    from optbench.transforms.distill import frozen_teacher

    teacher = copy.deepcopy(trained)
    images = synthetic.batch(0, 8)
    before = frozen_teacher(teacher)(images)
    assert frozen_teacher(teacher) is frozen_teacher(teacher)   # unchanged: shared
    with torch.no_grad():
        teacher.fc.weight.mul_(2.0)
    after = frozen_teacher(teacher)(images)
    assert not torch.allclose(before, after)
    assert torch.allclose(after, teacher.eval()(images), atol=1e-6)


def test_a_bf16_teacher_gives_float32_logits_close_to_fp32_and_is_its_own_frozen_copy(
        trained, synthetic, monkeypatch):
    """teacher_precision="bf16": the teacher's forward under bf16 autocast, float32 logits out
    (they are the students' targets), within bf16 rounding of the fp32 teacher's, cached apart
    from the fp32 frozen copy; the configs refuse other precisions with the choices."""
    from optbench import isa
    from optbench.transforms.distill import DistillConfig, KDLoss, frozen_teacher

    images = synthetic.batch(0, 16)
    fp32, bf16 = (frozen_teacher(trained, precision=p) for p in ("fp32", "bf16"))
    assert fp32 is not bf16 and frozen_teacher(trained, precision="bf16") is bf16
    # "auto" shares the frozen copy of the precision it runs in, on either kind of CPU
    for features, shared in ((isa.CpuFeatures(avx2=True, avx512=True, amx_bf16=True), bf16),
                             (isa.CpuFeatures(avx2=True), fp32)):
        monkeypatch.setattr(isa, "cpu_features", lambda features=features: features)
        assert frozen_teacher(trained, precision="auto") is shared
    monkeypatch.undo()
    exact, rounded = fp32(images), bf16(images)
    assert rounded.dtype == torch.float32 and not torch.equal(exact, rounded)
    assert torch.allclose(exact, rounded, atol=0.05 * exact.abs().max().item())
    for config in (DistillConfig, KDLoss):
        with pytest.raises(ConfigError, match="teacher_precision.*fp32.*bf16.*auto"):
            config(teacher_precision="fp16")


def test_a_bf16_teacher_warns_where_the_cpu_would_emulate_it(trained, synthetic, monkeypatch):
    import copy

    from optbench import isa
    from optbench.transforms.distill import frozen_teacher

    monkeypatch.setattr(isa, "cpu_features", lambda: isa.CpuFeatures(avx2=True))
    with pytest.warns(UserWarning, match="teacher_precision=\"bf16\" on a CPU without native"):
        teacher = copy.deepcopy(trained)   # held: the frozen copy refers to it weakly
        frozen_teacher(teacher, precision="bf16")(synthetic.batch(0, 4))


def test_pruning_fine_tunes_with_its_teacher(trained, ctx, monkeypatch):
    from optbench.transforms import distill

    calls = []
    real = distill.kd_loss
    monkeypatch.setattr(distill, "kd_loss", lambda *a: calls.append(1) or real(*a))
    config = config_from_dict({"method": "prune-structured", "ratio": 0.25, "round_to": 4,
                               "finetune": SHORT, "teacher": "fp32",
                               "kd": {"temperature": 2.0, "alpha": 0.5}})
    ctx.step = "prune-kd"
    variant = optimize(trained, config, ctx)
    assert len(calls) == SHORT["max_steps_per_epoch"]
    assert variant.info["finetune_teacher"] == "fp32"
    assert "val_accuracy" in variant.info["finetune"][-1]
    with pytest.raises(ConfigError, match="teacher guides the fine-tuning"):
        config_from_dict({"method": "prune-structured", "teacher": "fp32"})


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_reduced_precision_on_cuda_agrees_with_fp32(dtype, trained, ctx, synthetic):
    config = config_from_dict({"method": "reduced-precision", "dtype": dtype})
    variant = optimize(trained, config, dataclasses.replace(ctx, device="cuda"))
    assert "warnings" not in variant.info  # fp16 warns on CPU only
    for name in ("torch-eager", "torch-compile"):
        session = get_runtime(name).load(variant.model, example=ctx.example(2), device="cuda")
        logits, labels = collect_logits(lambda x, s=session: predict(s, x),
                                        make_loader(synthetic, 128))
        # the CPU contract's bar: bf16 through torch.compile on an H100 lost 2.3 points here
        allowed = CASES["reduced-precision"][1]
        assert top1_accuracy(logits, labels) >= evaluate(trained, synthetic) - allowed, name


def test_pt2e_falls_back_to_fx_with_a_warning_when_export_fails(trained, ctx, synthetic,
                                                                monkeypatch):
    from optbench.transforms import quantize

    def refuse(model, example):
        raise RuntimeError("Unsupported: this model cannot be exported\nmore detail")

    monkeypatch.setattr(quantize, "export_for_quantization", refuse)
    before = copy.deepcopy(trained.state_dict())
    with pytest.warns(UserWarning, match="FX path .* deprecated"):
        variant = optimize(trained, quantize.PT2EQuantConfig(calibration_batches=4), ctx)
    assert variant.name == "ptq-fx" and variant.runtimes == ("torch-eager",)
    assert "cannot be exported" in variant.info["pt2e_error"]
    assert "deprecated" in variant.info["warnings"][0]  # shown in the report's variant table
    # TinyNet: two int8 convs; the classifier stays fp32, as in ptq-ort-static
    assert variant.info["ops"] == {"int8_compute_ops": 2, "fp32_compute_ops": 1}
    assert all(torch.equal(v, before[k]) for k, v in trained.state_dict().items())
    session = get_runtime("torch-eager").load(variant.model, example=ctx.example(2))
    logits, labels = collect_logits(lambda x: predict(session, x), make_loader(synthetic, 128))
    assert top1_accuracy(logits, labels) >= evaluate(trained, synthetic) - CASES["ptq-pt2e"][1]
    with pytest.raises(ConfigError, match="fx_fallback"):
        optimize(trained, quantize.PT2EQuantConfig(fx_fallback=False), ctx)


def test_nncf_accuracy_control_puts_layers_back_to_fp32_within_max_drop(trained, ctx, synthetic):
    """NNCF's default ranges lose accuracy on this synthetic set (they clip the negative
    backgrounds that code some classes); the accuracy-aware variant must win it back by
    reverting layers, and say which."""
    ctx.step = "nncf-aa"
    variant = optimize(trained, config_from_dict({"method": "ptq-nncf", "max_drop": 2.0,
                                                  "subset_size": 128,
                                                  "validation_examples": 512}), ctx)
    assert variant.name == "ptq-nncf-aa2" and variant.info["max_drop_points"] == 2.0
    assert variant.info["fp32_layers"], "nothing was put back to fp32"
    assert variant.info["ops"]["fp32_conv"] >= 1
    session = get_runtime("openvino").load(variant.ir_path)
    logits, labels = collect_logits(lambda x: predict(session, x), make_loader(synthetic, 128))
    assert top1_accuracy(logits, labels) >= evaluate(trained, synthetic) - 0.02 - 1e-9


def test_pt2e_int8_model_survives_pickling_for_worker_processes(trained, ctx):
    """processes = N sends each model to a fresh worker by pickle; export's input guards and
    train/eval overrides used to make the PT2E graph unpicklable."""
    import pickle

    ctx.step = "pt2e-pickle"
    variant = optimize(trained, config_from_dict({"method": "ptq-pt2e",
                                                  "calibration_batches": 2}), ctx)
    copy_ = pickle.loads(pickle.dumps(variant.model))
    x = torch.randn(3, 1, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(copy_(x), variant.model(x))


def test_parity_agreement_ignores_flips_between_near_tied_logits():
    import numpy as np

    from optbench.transforms.export import decided_agreement

    reference = np.array([[10.0, 9.999, 0.0], [5.0, 1.0, 0.0], [0.0, 3.0, 1.0]])
    candidate = np.array([[9.999, 10.0, 0.0], [1.0, 5.0, 0.0], [0.0, 3.0, 1.0]])
    # row 0 flips inside the tie band (rounding); row 1 is a real disagreement
    assert decided_agreement(reference, candidate, tie=0.01) == pytest.approx(2 / 3)
    assert decided_agreement(reference, candidate, tie=0.0) == pytest.approx(1 / 3)


def test_a_fine_tune_that_loses_the_pruned_start_is_flagged_with_the_fix(trained, ctx, tmp_path):
    """Pruned, then one epoch at an lr that wrecks the network: the variant warns that the
    fine-tune ended below the pruned start and names warm-up and clipping."""
    wrecking = {"epochs": 1, "batch_size": 32, "lr": 20.0, "max_steps_per_epoch": 8}
    variant = optimize(trained, config_from_dict({"method": "prune-structured", "ratio": 0.25,
                                                  "round_to": 4, "finetune": wrecking}),
                       dataclasses.replace(ctx, workdir=tmp_path))
    start, first = variant.info["val_accuracy_pruned"], variant.info["finetune"][0]["val_accuracy"]
    assert first < start
    assert any("lost the pruned start" in w and "grad_clip_norm" in w
               for w in variant.info["warnings"])


def test_lost_start_compares_the_first_epoch_with_the_pruned_start():
    from optbench.transforms.prune import lost_start

    assert lost_start(0.8, [{"val_accuracy": 0.79}, {"val_accuracy": 0.95}]).startswith(
        "the fine-tune lost the pruned start: 79.00% validation top-1 after its first epoch "
        "against 80.00%")
    assert lost_start(0.8, [{"val_accuracy": 0.8}]) is None      # kept: not below
    assert lost_start(None, [{"val_accuracy": 0.1}]) is None     # no validation split
    assert lost_start(0.8, [{"train_loss": 1.0}]) is None        # epochs without validation
    assert lost_start(0.8, []) is None
