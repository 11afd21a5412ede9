import pytest
import torch

from optbench.errors import ConfigError, MissingInputError
from optbench.models import ZOO, build_model


@pytest.mark.parametrize("name", ZOO)
@pytest.mark.parametrize("in_channels,small_input", [(1, False), (3, True)])
def test_zoo_models_adapt_channels_and_classes(name, in_channels, small_input):
    model = build_model(name, num_classes=7, in_channels=in_channels,
                        small_input=small_input).eval()
    with torch.no_grad():
        out = model(torch.randn(2, in_channels, 32, 32))
    assert out.shape == (2, 7)


def test_small_input_stem_keeps_resolution():
    model = build_model("resnet18", small_input=True)
    assert model.conv1.stride == (1, 1) and isinstance(model.maxpool, torch.nn.Identity)
    assert str(build_model("resnet18", stem="small")) == str(model)


def test_small_pool_stem_keeps_the_max_pool():
    model = build_model("resnet18", in_channels=1, stem="small-pool").eval()
    assert model.conv1.stride == (1, 1) and model.conv1.kernel_size == (3, 3)
    assert isinstance(model.maxpool, torch.nn.MaxPool2d)
    features = torch.nn.Sequential(model.conv1, model.bn1, model.relu, model.maxpool)
    assert features(torch.randn(1, 1, 32, 32)).shape[-1] == 16   # "small" keeps 32, stock 8
    with pytest.raises(ConfigError, match="small-pool.*max-pool"):
        build_model("mobilenet_v2", stem="small-pool")
    with pytest.raises(ConfigError, match="contradicts"):
        build_model("resnet18", small_input=True, stem="small-pool")
    with pytest.raises(ConfigError, match="stem must be one of"):
        build_model("resnet18", stem="tiny")


def test_unknown_model_lists_the_zoo():
    with pytest.raises(ConfigError, match="mobilenet_v2"):
        build_model("vgg16")


def test_pretrained_weights_offline_give_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(MissingInputError) as err:
        build_model("resnet18", weights="DEFAULT")
    assert "checkpoints" in str(err.value) and "weights=None" in str(err.value)


def test_any_torchvision_classifier_adapts_channels_and_classes():
    model = build_model("torchvision:regnet_x_400mf", num_classes=5, in_channels=1).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 1, 64, 64)).shape == (2, 5)


def test_timm_models_build_offline():
    pytest.importorskip("timm")
    model = build_model("timm:resnet10t", num_classes=4, in_channels=1).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 1, 32, 32)).shape == (2, 4)


def test_your_own_code_builds_the_model(tmp_path, monkeypatch):
    (tmp_path / "mynets.py").write_text(
        "import torch\n"
        "def tiny(num_classes, in_channels):\n"
        "    return torch.nn.Sequential(\n"
        "        torch.nn.Conv2d(in_channels, 8, 3), torch.nn.ReLU(),\n"
        "        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),\n"
        "        torch.nn.Linear(8, num_classes))\n"
        "def not_a_model(num_classes, in_channels):\n"
        "    return 'x'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    model = build_model("python:mynets:tiny", num_classes=3, in_channels=2)
    assert model(torch.randn(1, 2, 8, 8)).shape == (1, 3)
    with pytest.raises(ConfigError, match="returned str, not an nn.Module"):
        build_model("python:mynets:not_a_model")
    with pytest.raises(ConfigError, match="importable"):
        build_model("python:nowhere:tiny")


@pytest.mark.parametrize("name,match", [
    ("torchvision:no_such_net", "torchvision has no classification model"),
    ("keras:resnet", "unknown model source 'keras'"),
    ("python:no_function", "python:<package.module>:<function>"),
])
def test_bad_model_names_say_what_is_accepted(name, match):
    with pytest.raises(ConfigError, match=match):
        build_model(name)


def test_small_input_is_for_the_zoo_only():
    with pytest.raises(ConfigError, match="small_input"):
        build_model("torchvision:regnet_x_400mf", small_input=True)


def test_a_recipe_model_can_start_from_a_checkpoint(tmp_path):
    from optbench.pipeline.recipe import DataConfig, ModelConfig
    from optbench.pipeline.run import _build

    source = build_model("torchvision:regnet_x_400mf", num_classes=3, in_channels=1)
    torch.save(source.state_dict(), tmp_path / "w.pt")
    spec = ModelConfig(arch="torchvision:regnet_x_400mf", num_classes=3,
                       checkpoint=str(tmp_path / "w.pt"))
    model = _build("net", spec, DataConfig(channels=1), num_classes=3).model
    for a, b in zip(model.state_dict().values(), source.state_dict().values(), strict=True):
        assert torch.equal(a, b)
