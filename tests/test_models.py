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
