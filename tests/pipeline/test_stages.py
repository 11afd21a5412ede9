"""Fast unit tests of two pipeline stages without running a recipe: the other-size pass
(which variants run as they are, which are re-derived, which are skipped) and the robustness
stage (white-box on fp32 modules, transfer from the nearest fp32 ancestor for int8/ONNX)."""

import numpy as np
import pytest
import torch
from conftest import TinyNet

from optbench.data import make_loader, synthetic_dataset
from optbench.pipeline import Recipe
from optbench.pipeline.at_size import variants_at_size
from optbench.pipeline.responsible import RobustnessSpec, attack_source, robustness_stage
from optbench.runtime import get_runtime
from optbench.runtime.base import predict
from optbench.train import TrainConfig, train
from optbench.transforms import Context, Variant, config_from_dict, optimize


def _config(step: dict):
    return config_from_dict({k: v for k, v in step.items() if k not in ("name", "input")})


RECIPE = {
    "data": {"dataset": "synthetic", "image_size": 16, "channels": 1},
    "models": {"net": {"arch": "resnet18"}},
    "steps": [{"name": "sparse", "method": "prune-unstructured", "ratio": 0.3},
              {"name": "onnx", "method": "export-onnx", "input": "net", "parity_examples": 16},
              {"name": "qat", "method": "qat-pt2e", "input": "net"}],
}


@pytest.fixture(scope="module")
def stage(tmp_path_factory):
    data = synthetic_dataset(n=256, size=16, seed=0)
    torch.manual_seed(0)
    net = TinyNet()
    train(net, data, TrainConfig(epochs=6, batch_size=32, lr=0.05, seed=1), progress=False)
    net.eval()
    work = tmp_path_factory.mktemp("stages")
    ctx = Context(example_input=data.batch(0, 2), calib_data=data, val_data=data,
                  workdir=work, progress=False)
    base = Variant("net", model=net, lineage=("net",))
    variants = {"net": base,
                "sparse": optimize(base, _config(RECIPE["steps"][0]), ctx.for_step("sparse"),
                                   name="sparse"),
                "onnx": optimize(base, _config(RECIPE["steps"][1]), ctx.for_step("onnx"),
                                 name="onnx"),
                "qat": base.derive("qat", model=net, info={"int8": True})}
    return Recipe.from_dict(RECIPE), variants, data, work


def test_other_size_keeps_fp32_modules_rederives_exports_and_skips_qat(stage):
    recipe, variants, data, work = stage
    splits = {"test": data, "calib": data, "val": data}
    out, skipped = variants_at_size(recipe, variants, ["net", "sparse", "onnx", "qat"], splits,
                                    24, work / "at24")
    names = [v.name for v in out]
    assert names == ["net", "sparse", "onnx"]
    assert out[0] is variants["net"] and out[1] is variants["sparse"]
    assert out[2].onnx_path != variants["onnx"].onnx_path     # exported again at 24x24
    session = get_runtime("onnxruntime").load(out[2].onnx_path)
    assert predict(session, torch.randn(3, 1, 24, 24)).shape == (3, 10)
    assert "training again" in skipped["qat"] and "qat-pt2e" in skipped["qat"]


def test_attacks_come_from_the_nearest_fp32_ancestor(stage):
    _, variants, _, _ = stage
    assert attack_source(variants["sparse"], variants) is variants["sparse"]
    assert attack_source(variants["onnx"], variants) is variants["net"]
    assert attack_source(variants["qat"], variants) is variants["net"]
    assert attack_source(Variant("x", lineage=("x",)), {}) is None


def test_robustness_stage_white_box_and_transfer(stage):
    _, variants, data, _ = stage
    spec = RobustnessSpec(eps=(0.1,), attack="fgsm", limit=64, batch_size=32)
    out = robustness_stage(variants, ["sparse", "onnx"], {"sparse": "torch-eager",
                                                          "onnx": "onnxruntime"}, data, spec)
    assert out["sparse"]["mode"] == "white-box" and out["onnx"]["mode"] == "transfer from net"
    for name in ("sparse", "onnx"):
        clean, attacked = out[name]["accuracy"]["0.0"], out[name]["accuracy"]["0.1"]
        assert attacked < clean and out[name]["n"] == 64
    logits = np.concatenate([variants["sparse"].model(x).detach().numpy()
                             for x, _ in make_loader(data, 64)])[:64]
    clean = float((logits.argmax(1) == np.asarray(data.labels[:64])).mean())
    assert out["sparse"]["accuracy"]["0.0"] == pytest.approx(clean)
