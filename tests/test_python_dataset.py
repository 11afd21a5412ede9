"""Datasets from your own code (`dataset = "python"`, entry package.module:function): one
Dataset split here, a (train, val, test) triple or a dict; PIL, uint8 and float images; and the
bad-data catalogue (each case a clear error)."""

import textwrap

import numpy as np
import pytest

from optbench.data import load_python_dataset
from optbench.errors import ConfigError
from optbench.pipeline import Recipe

MODULE = textwrap.dedent('''
    import numpy as np
    import torch
    from PIL import Image


    class Colours:
        """Colour squares: the class is the channel that is bright."""
        classes = ["red", "green", "blue"]

        def __init__(self, n, seed, kind="pil"):
            rng = np.random.default_rng(seed)
            self.labels = rng.integers(0, 3, n)
            self.noise = rng.integers(0, 60, (n, 16, 16, 3))
            self.kind = kind

        def __len__(self):
            return len(self.labels)

        def __getitem__(self, i):
            x = self.noise[i].copy()
            x[..., self.labels[i]] += 150
            x = x.astype(np.uint8)
            label = int(self.labels[i])
            if self.kind == "pil":
                return Image.fromarray(x), label
            if self.kind == "chw-float":
                return torch.from_numpy(x).permute(2, 0, 1).float() / 255, torch.tensor(label)
            if self.kind == "normalized":
                return (torch.from_numpy(x).permute(2, 0, 1).float() / 255 - 0.5) / 0.25, label
            if self.kind == "grey-2d":
                return x[..., 0], label
            if self.kind == "five-channels":
                return np.zeros((16, 16, 5), np.uint8), label
            return x, "cat"


    def one():
        return Colours(300, 0)


    def triple():
        return Colours(200, 1), Colours(50, 2, "chw-float"), Colours(60, 3)


    def as_dict():
        return {"train": Colours(200, 1), "test": Colours(60, 3, "chw-float")}


    def normalized():
        return Colours(40, 0, "normalized")


    def five_channels():
        return Colours(40, 0, "five-channels")


    def bad_label():
        return Colours(40, 0, "bad-label")


    def not_a_dataset():
        return 42


    def broken():
        raise RuntimeError("no data today")


    def pairs():
        return [(np.full((8, 8), 40 * (i % 2), np.uint8), i % 2) for i in range(30)]


    def tiny_net(num_classes, in_channels):
        return torch.nn.Sequential(
            torch.nn.Conv2d(in_channels, 8, 3, padding=1), torch.nn.BatchNorm2d(8),
            torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
            torch.nn.Linear(8, num_classes))
''')


@pytest.fixture()
def entry(tmp_path, monkeypatch):
    (tmp_path / "my_colours.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    return lambda fn: f"my_colours:{fn}"


def test_one_dataset_is_split_with_a_seed_and_named_classes(entry):
    splits = load_python_dataset(entry("one"), seed=0)
    assert [len(splits[s]) for s in ("train", "val", "test")] == [216, 24, 60]
    assert splits["train"].classes == ("red", "green", "blue")
    tf = splits["train"].transform
    assert tf.rgb and tf.channels == 3 and tf.size == 16
    # the bright channel's mean is highest for its class: the pixels arrived unchanged
    red = splits["train"].images[splits["train"].labels == 0].numpy()
    assert red[..., 0].mean() > red[..., 1].mean() + 100
    again = load_python_dataset(entry("one"), seed=0)
    assert np.array_equal(again["test"].images, splits["test"].images)


@pytest.mark.parametrize("fn, sizes", [("triple", [200, 50, 60]), ("as_dict", [180, 20, 60]),
                                       ("pairs", [22, 2, 6])])
def test_given_splits_and_float_chw_images(entry, fn, sizes):
    splits = load_python_dataset(entry(fn), size=20, seed=0)
    assert [len(splits[s]) for s in ("train", "val", "test")] == sizes
    colour = fn != "pairs"     # a list of (grey array, label) pairs is one dataset
    assert splits["test"].images.shape[1:] == ((20, 20, 3) if colour else (20, 20))
    assert splits["test"].batch(0, 2).shape == (2, 3 if colour else 1, 20, 20)


@pytest.mark.parametrize("fn, message", [
    ("normalized", r"float pixels must lie in \[0, 1\].*Return raw images, not normalized"),
    ("five_channels", r"image of shape \(16, 16, 5\)"),
    ("bad_label", "label 'cat' is not an integer class id"),
    ("not_a_dataset", "returned a int, not a Dataset"),
    ("broken", "raised RuntimeError: no data today"),
    ("missing_function", "has no attribute 'missing_function'"),
])
def test_bad_code_gets_an_error_naming_the_problem(entry, fn, message):
    with pytest.raises(ConfigError, match=message):
        load_python_dataset(entry(fn))


def test_a_recipe_names_the_entry_point():
    with pytest.raises(ConfigError, match="needs entry"):
        Recipe.from_dict({"data": {"dataset": "python"}, "models": {"m": {"arch": "resnet18"}}})
    with pytest.raises(ConfigError, match="entry is for dataset = \"python\""):
        Recipe.from_dict({"data": {"entry": "a:b"}, "models": {"m": {"arch": "resnet18"}}})
    with pytest.raises(ConfigError, match="<package.module>:<function>"):
        load_python_dataset("no_colon_here")
