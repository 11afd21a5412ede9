import pytest
import torch
from conftest import TinyNet

from optbench.augment import AugmentConfig, augment_batch
from optbench.errors import ConfigError
from optbench.train import TrainConfig, train


def _batch(n=16, size=12):
    return torch.arange(n * size * size, dtype=torch.float32).reshape(n, 1, size, size)


def test_off_is_the_identity_and_on_is_seeded():
    images = _batch()
    assert augment_batch(images, AugmentConfig(), torch.Generator()) is images
    config = AugmentConfig(crop_padding=2, hflip=True, erasing=0.5)
    a = augment_batch(images, config, torch.Generator().manual_seed(1))
    b = augment_batch(images, config, torch.Generator().manual_seed(1))
    c = augment_batch(images, config, torch.Generator().manual_seed(2))
    assert a.shape == images.shape and torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(images, _batch())   # the input is left alone


def test_each_op_does_what_it_says():
    images = _batch(64)
    flipped = augment_batch(images, AugmentConfig(hflip=True), torch.Generator().manual_seed(0))
    same = [torch.equal(f, i) for f, i in zip(flipped, images, strict=True)]
    mirrored = [torch.equal(f, i.flip(-1)) for f, i in zip(flipped, images, strict=True)]
    assert all(s or m for s, m in zip(same, mirrored, strict=True))
    assert 10 < sum(mirrored) < 54
    cropped = augment_batch(images, AugmentConfig(crop_padding=2), torch.Generator().manual_seed(0))
    # a crop of the padded image is the image shifted by at most 2 pixels: its centre survives
    for c, i in zip(cropped, images, strict=True):
        assert any(torch.equal(c[0, 2:-2, 2:-2], i[0, 2 + dy:10 + dy, 2 + dx:10 + dx])
                   for dy in range(-2, 3) for dx in range(-2, 3))
    erased = augment_batch(images + 1, AugmentConfig(erasing=1.0), torch.Generator())
    zeros = (erased == 0).flatten(1).sum(1)
    assert bool((zeros >= 1).all()) and bool((zeros <= 0.4 * 144).all())


def test_bad_settings_name_the_field():
    with pytest.raises(ConfigError, match="crop_padding"):
        AugmentConfig(crop_padding=-1)
    with pytest.raises(ConfigError, match="erasing"):
        AugmentConfig(erasing=1.5)
    with pytest.raises(ConfigError, match="smaller than the image"):
        augment_batch(_batch(size=4), AugmentConfig(crop_padding=4), torch.Generator())
    assert TrainConfig.from_dict({"augment": {"hflip": True}}).augment == AugmentConfig(hflip=True)


def test_augmented_training_resumes_to_the_same_weights(synthetic, tmp_path):
    config = TrainConfig(epochs=2, batch_size=32, lr=0.05, seed=3,
                         augment=AugmentConfig(crop_padding=2, hflip=True, erasing=0.3))
    torch.manual_seed(0)
    whole = TinyNet()
    train(whole, synthetic, config, progress=False)
    ckpt = tmp_path / "run.ckpt"
    torch.manual_seed(0)
    train(TinyNet(), synthetic, config, checkpoint=ckpt, progress=False, stop_after_epoch=1)
    torch.manual_seed(0)
    resumed = TinyNet()
    history = train(resumed, synthetic, config, checkpoint=ckpt, val_data=synthetic,
                    progress=False).history
    for a, b in zip(whole.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.allclose(a.float(), b.float(), atol=1e-6)
    assert history[-1]["seconds"] > 0 and "val_accuracy" in history[-1]


def test_the_loss_sees_the_augmented_view(synthetic):
    seen = []

    def loss_fn(model, images, labels):
        seen.append(images.clone())
        return torch.nn.functional.cross_entropy(model(images), labels)

    for augment in (AugmentConfig(), AugmentConfig(hflip=True)):
        train(TinyNet(), synthetic, TrainConfig(epochs=1, batch_size=32, max_steps_per_epoch=1,
                                                augment=augment), loss_fn=loss_fn, progress=False)
    plain, augmented = seen
    assert not torch.equal(plain, augmented)
    assert all(torch.equal(a, p) or torch.equal(a, p.flip(-1))
               for a, p in zip(augmented, plain, strict=True))
