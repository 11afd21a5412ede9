import dataclasses
import warnings

import pytest
import torch
from conftest import TinyNet

from optbench import isa
from optbench.env import device_name
from optbench.errors import ConfigError
from optbench.io import safe_torch_load
from optbench.runtime.torch import dynamo_counts
from optbench.train import TrainConfig, evaluate, train

CONFIG = TrainConfig(epochs=5, batch_size=32, lr=0.05, seed=3)
CPUS = {"amx": isa.CpuFeatures(avx2=True, avx512=True, amx_bf16=True),   # patched in for
        "avx2": isa.CpuFeatures(avx2=True)}                               # isa.cpu_features


def test_learns_the_synthetic_task(synthetic):
    torch.manual_seed(0)
    model = TinyNet()
    before = evaluate(model, synthetic)
    result = train(model, synthetic, CONFIG, val_data=synthetic, progress=False)
    assert len(result.history) == 5
    assert result.history[-1]["val_accuracy"] > 0.8 > before + 0.5
    assert result.history[-1]["val_examples"] == len(synthetic)   # for the report's ± CI


def test_interrupted_run_resumes_to_the_same_weights(synthetic, tmp_path):
    torch.manual_seed(0)
    whole = TinyNet()
    torch.manual_seed(0)
    resumed = TinyNet()
    train(whole, synthetic, CONFIG, progress=False)
    ckpt = tmp_path / "run.ckpt"
    train(resumed, synthetic, CONFIG, checkpoint=ckpt, progress=False, stop_after_epoch=1)
    assert len(safe_torch_load(ckpt)["history"]) == 1
    torch.manual_seed(0)
    fresh = TinyNet()  # a new process would rebuild the model, then resume
    result = train(fresh, synthetic, CONFIG, checkpoint=ckpt, progress=False)
    assert result.resumed_from_epoch == 1
    for a, b in zip(whole.state_dict().values(), fresh.state_dict().values(), strict=True):
        assert torch.allclose(a.float(), b.float(), atol=1e-6)


def test_checkpoint_from_another_config_is_refused(synthetic, tmp_path):
    ckpt = tmp_path / "run.ckpt"
    train(TinyNet(), synthetic, TrainConfig(epochs=1, batch_size=64), checkpoint=ckpt,
          progress=False)
    with pytest.raises(ConfigError, match="different training config"):
        train(TinyNet(), synthetic, TrainConfig(epochs=2, batch_size=64), checkpoint=ckpt,
              progress=False)


def test_checkpoint_of_another_shape_is_refused_with_the_reason(synthetic, tmp_path):
    """Same training config, other layer shapes (a pruning step that now keeps other channel
    counts): a clear refusal naming the layer, not a bare load_state_dict error."""
    ckpt = tmp_path / "run.ckpt"
    config = TrainConfig(epochs=1, batch_size=64, max_steps_per_epoch=2)
    train(TinyNet(), synthetic, config, checkpoint=ckpt, progress=False)
    narrow = TinyNet()
    narrow.fc = torch.nn.Linear(16, 12)
    with pytest.raises(ConfigError, match=r"another shape.*fc\.weight.*rounding = \"down\""):
        train(narrow, synthetic, config, checkpoint=ckpt, progress=False)
    assert ckpt.is_file()   # nothing already written is lost


def test_config_validation_names_field_and_choices():
    with pytest.raises(ConfigError, match="optimizer.*sgd"):
        TrainConfig(optimizer="lion")
    with pytest.raises(ConfigError, match="epochs"):
        TrainConfig(epochs=0)
    assert TrainConfig.from_dict(CONFIG.to_dict()) == CONFIG


def test_warmup_then_cosine_schedule_known_values():
    from optbench.train import _scheduler

    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=1.0)
    sched = _scheduler(opt, TrainConfig(epochs=2, lr=1.0, warmup_epochs=1.0), steps=10)
    lrs = []
    for _ in range(20):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(0.01) and lrs[5] == pytest.approx(0.01 + 0.99 * 0.5)
    assert lrs[10] == pytest.approx(1.0) and lrs[15] == pytest.approx(0.5)
    with pytest.raises(ConfigError, match="warmup_epochs"):
        TrainConfig(epochs=2, warmup_epochs=3)


def test_checkpoint_written_before_a_new_field_still_resumes(synthetic, tmp_path):
    """A field added to TrainConfig later (here warmup_epochs, as if the checkpoint predated it)
    takes its default; the checkpoint resumes when the run keeps that default, not otherwise."""
    ckpt = tmp_path / "run.ckpt"
    config = TrainConfig(epochs=2, batch_size=64)
    train(TinyNet(), synthetic, config, checkpoint=ckpt, progress=False, stop_after_epoch=1)
    state = safe_torch_load(ckpt)
    del state["config"]["warmup_epochs"]
    torch.save(state, ckpt)
    result = train(TinyNet(), synthetic, config, checkpoint=ckpt, progress=False)
    assert result.resumed_from_epoch == 1
    with pytest.raises(ConfigError, match="different training config"):
        train(TinyNet(), synthetic, TrainConfig(epochs=2, batch_size=64, warmup_epochs=1.0),
              checkpoint=ckpt, progress=False)


class _Crash(Exception):
    pass


def _noisy_loss(crash_at: int | None = None):
    """Cross-entropy on logits with noise from torch's, numpy's and Python's global generators
    (as dropout or a sampling loss would draw); raises at call `crash_at`, as a kill would."""
    import random

    import numpy as np

    calls = [0]

    def loss(model, images, labels):
        calls[0] += 1
        if calls[0] == crash_at:
            raise _Crash
        scale = 1 + 0.1 * (torch.rand(1) + float(np.random.rand()) + random.random())
        return torch.nn.functional.cross_entropy(model(images) * scale, labels)
    return loss


def test_killed_mid_epoch_resumes_to_the_same_weights(synthetic, tmp_path):
    """Saved inside the epoch (save_every_s=0: after every step), killed at step 11 of epoch 2
    (16 steps each), resumed in a fresh model: same weights as the uninterrupted run, and the
    history counts every step's loss once, and every clipped step once."""
    from optbench.augment import AugmentConfig

    config = TrainConfig(epochs=3, batch_size=32, lr=0.05, seed=3, grad_clip_norm=1.0,
                         augment=AugmentConfig(crop_padding=2, hflip=True))
    torch.manual_seed(0)
    whole = TinyNet()
    expected = train(whole, synthetic, config, loss_fn=_noisy_loss(), progress=False).history
    ckpt = tmp_path / "run.ckpt"
    torch.manual_seed(0)
    with pytest.raises(_Crash):
        train(TinyNet(), synthetic, config, checkpoint=ckpt, loss_fn=_noisy_loss(crash_at=27),
              progress=False, save_every_s=0)
    saved = safe_torch_load(ckpt)
    assert len(saved["history"]) == 1 and saved["partial"]["step"] == 10
    fresh = TinyNet()
    result = train(fresh, synthetic, config, checkpoint=ckpt, loss_fn=_noisy_loss(),
                   progress=False)
    assert result.resumed_from_epoch == 1
    for a, b in zip(whole.state_dict().values(), fresh.state_dict().values(), strict=True):
        assert torch.allclose(a.float(), b.float(), atol=1e-6)
    assert [h["train_loss"] for h in result.history] == pytest.approx(
        [h["train_loss"] for h in expected], rel=1e-6)
    assert "partial" not in safe_torch_load(ckpt)   # a finished epoch replaces the partial save
    assert all(h["cpu_seconds"] > 0 for h in result.history)
    clips = [(h["clipped_steps"], h["max_grad_norm"]) for h in result.history]
    assert clips == [(h["clipped_steps"], pytest.approx(h["max_grad_norm"], rel=1e-5))
                     for h in expected]
    assert 0 < clips[1][0] < 16      # epoch 2, the one cut at step 11: some steps clipped


def test_resume_and_epoch_draws_take_the_step_the_killed_run_would_have_taken(
        synthetic, tmp_path):
    """What scripts/replay_steps.py builds on: from a save at step 10 of epoch 2, resume() and
    epoch_draws() give the batch, the augmented view, the optimizer and the lr schedule of the
    next step; taking it by hand gives the weights of a run killed one step later."""
    import itertools

    from optbench.augment import AugmentConfig
    from optbench.train import epoch_draws, resume

    config = TrainConfig(epochs=2, batch_size=32, lr=0.05, seed=3,
                         augment=AugmentConfig(crop_padding=2, hflip=True, erasing=0.5))
    saves = []
    for crash_at in (27, 28):
        torch.manual_seed(0)
        saves.append(tmp_path / f"{crash_at}.ckpt")
        with pytest.raises(_Crash):
            train(TinyNet(), synthetic, config, checkpoint=saves[-1],
                  loss_fn=_noisy_loss(crash_at=crash_at), progress=False, save_every_s=0)
    model = TinyNet()
    run = resume(model, synthetic, config, saves[0])
    assert (run.epoch, run.steps) == (1, 16) and len(run.history) == 1
    draws = epoch_draws(synthetic, config, run.epoch, run.partial)
    assert draws.done.step == 10
    images, labels = next(itertools.islice(draws.loader, draws.done.step, None))
    loss = _noisy_loss()(model, draws.views(images), labels)
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    run.optimizer.step()
    run.scheduler.step()
    later = safe_torch_load(saves[1])
    assert later["partial"]["step"] == 11
    for a, b in zip(model.state_dict().values(), later["model"].values(), strict=True):
        assert torch.equal(a, b)
    assert run.scheduler.state_dict() == later["scheduler"]
    with pytest.raises(ConfigError, match="unfinished epoch is epoch 2, not 1"):
        epoch_draws(synthetic, config, 0, run.partial)


def test_a_save_without_cpu_time_or_clip_counts_leaves_them_unrecorded_for_that_epoch(
        synthetic, tmp_path):
    """An unfinished epoch saved before CPU time and clip counts were recorded: its record has
    neither (not a figure that misses the first part); the epochs after it have both."""
    config = TrainConfig(epochs=2, batch_size=32, grad_clip_norm=1.0)
    ckpt = tmp_path / "run.ckpt"
    with pytest.raises(_Crash):
        train(TinyNet(), synthetic, config, checkpoint=ckpt, loss_fn=_noisy_loss(crash_at=5),
              progress=False, save_every_s=0)
    state = safe_torch_load(ckpt)
    for key in ("cpu_seconds", "clipped", "max_grad_norm"):
        del state["partial"][key]
    torch.save(state, ckpt)
    history = train(TinyNet(), synthetic, config, checkpoint=ckpt, progress=False).history
    assert "cpu_seconds" not in history[0] and history[1]["cpu_seconds"] > 0
    assert "clipped_steps" not in history[0] and "clipped_steps" in history[1]
    assert history[0]["seconds"] > 0


def test_a_resumed_epoch_counts_the_time_its_save_had_already_spent(synthetic, tmp_path):
    """The epoch's wall and CPU seconds continue from the unfinished save's (a resume does not
    restart the clock): a save that says 1000 s gives a record of at least 1000 s; the next
    epoch, not resumed, starts from zero."""
    config = TrainConfig(epochs=2, batch_size=32)
    ckpt = tmp_path / "run.ckpt"
    with pytest.raises(_Crash):
        train(TinyNet(), synthetic, config, checkpoint=ckpt, loss_fn=_noisy_loss(crash_at=5),
              progress=False, save_every_s=0)
    state = safe_torch_load(ckpt)
    state["partial"]["seconds"] = state["partial"]["cpu_seconds"] = 1000.0
    torch.save(state, ckpt)
    history = train(TinyNet(), synthetic, config, checkpoint=ckpt, progress=False).history
    assert history[0]["seconds"] >= 1000.0 and history[0]["cpu_seconds"] >= 1000.0
    assert history[1]["seconds"] < 1000.0 and history[1]["cpu_seconds"] < 1000.0


def test_grad_clip_norm_bounds_the_step_a_spiking_batch_takes(synthetic):
    """A loss a million times too large (a spike): with grad_clip_norm=1 and plain SGD at lr 1
    the weights move by at most 1 in global norm; without clipping they fly."""
    def spiking(model, images, labels):
        return torch.nn.functional.cross_entropy(model(images), labels) * 1e6

    moved = {}
    for clip in (0.0, 1.0):
        torch.manual_seed(0)
        model = TinyNet()
        before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
        config = TrainConfig(epochs=1, batch_size=32, lr=1.0, momentum=0.0, weight_decay=0.0,
                             schedule="constant", max_steps_per_epoch=1, grad_clip_norm=clip)
        history = train(model, synthetic, config, loss_fn=spiking, progress=False).history
        assert ("clipped_steps" in history[0]) == bool(clip)   # recorded when clipping
        after = torch.cat([p.detach().flatten() for p in model.parameters()])
        moved[clip] = float((after - before).norm())
    assert moved[1.0] <= 1.0 + 1e-4 and moved[0.0] > 1e3
    assert history[0]["clipped_steps"] == 1 and history[0]["max_grad_norm"] > 1e3
    with pytest.raises(ConfigError, match="grad_clip_norm"):
        TrainConfig(grad_clip_norm=-1.0)


def test_bf16_precision_learns_resumes_and_hands_back_a_contiguous_fp32_model(synthetic,
                                                                               tmp_path):
    config = dataclasses.replace(CONFIG, precision="bf16")
    torch.manual_seed(0)
    whole = TinyNet()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # emulated-bf16 warning on CPUs without it
        result = train(whole, synthetic, config, val_data=synthetic, progress=False)
        assert result.history[-1]["val_accuracy"] > 0.8
        assert {(h["device"], h["precision"]) for h in result.history} == {
            (device_name("cpu"), "bf16")}   # where each epoch ran, for the report
        assert all(p.dtype == torch.float32 and p.is_contiguous() for p in whole.parameters())
        ckpt = tmp_path / "run.ckpt"
        torch.manual_seed(0)
        train(TinyNet(), synthetic, config, checkpoint=ckpt, progress=False, stop_after_epoch=1)
        torch.manual_seed(0)
        resumed = TinyNet()
        train(resumed, synthetic, config, checkpoint=ckpt, progress=False)
    for a, b in zip(whole.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.allclose(a.float(), b.float(), atol=1e-6)
    # the bf16 run is a different run from the fp32 one, and the config says so
    with pytest.raises(ConfigError, match="different training config"):
        train(TinyNet(), synthetic, TrainConfig(epochs=5, batch_size=32, lr=0.05, seed=3),
              checkpoint=ckpt, progress=False)


def test_bf16_warns_where_the_cpu_would_emulate_it(synthetic, monkeypatch):
    monkeypatch.setattr(isa, "cpu_features", lambda: isa.CpuFeatures(avx2=True))
    with pytest.warns(UserWarning, match="precision=\"bf16\" on a CPU without native bf16 "
                      r"\(avx2.*ask for fp32"):
        train(TinyNet(), synthetic, TrainConfig(batch_size=64, max_steps_per_epoch=1,
                                                precision="bf16"), progress=False)


@pytest.mark.parametrize(("cpu", "ran"), [("amx", "bf16"), ("avx2", "fp32")])
def test_auto_precision_trains_in_bf16_only_where_the_cpu_has_it_and_records_which(
        synthetic, monkeypatch, cpu, ran):
    monkeypatch.setattr(isa, "cpu_features", lambda: CPUS[cpu])
    torch.manual_seed(0)
    model = TinyNet()
    config = dataclasses.replace(CONFIG, epochs=1, precision="auto")
    seen: list = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # "auto" never warns: it picks what the CPU does
        history = train(model, synthetic, config, loss_fn=_spy_loss(seen), progress=False).history
    assert history[0]["precision"] == ran
    assert {step[0] for step in seen} == {ran == "bf16"}   # autocast on exactly when bf16 ran
    torch.manual_seed(0)
    explicit = TinyNet()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train(explicit, synthetic, dataclasses.replace(config, precision=ran),
              loss_fn=_spy_loss([]), progress=False)
    for a, b in zip(model.state_dict().values(), explicit.state_dict().values(), strict=True):
        assert torch.equal(a, b)   # auto ran exactly what it says it ran


def test_a_checkpoint_resumes_under_auto_whatever_precision_it_ran_in(synthetic, tmp_path,
                                                                       monkeypatch):
    """A run started with an explicit precision continues when the config says "auto" (a
    recipe made portable mid-run), on a CPU whose auto is the same precision or another one
    (each epoch records what it ran in), and a save made under "auto" continues under an
    explicit precision."""

    config = dataclasses.replace(CONFIG, epochs=3)
    for cpu, ran in (("amx", "bf16"), ("avx2", "fp32")):
        ckpt = tmp_path / f"{cpu}.ckpt"
        monkeypatch.setattr(isa, "cpu_features", lambda: CPUS["amx"])
        train(TinyNet(), synthetic, dataclasses.replace(config, precision="bf16"),
              checkpoint=ckpt, progress=False, stop_after_epoch=1)
        monkeypatch.setattr(isa, "cpu_features", lambda cpu=cpu: CPUS[cpu])
        result = train(TinyNet(), synthetic, dataclasses.replace(config, precision="auto"),
                       checkpoint=ckpt, progress=False, stop_after_epoch=2)
        assert result.resumed_from_epoch == 1
        assert [h["precision"] for h in result.history] == ["bf16", ran]
    monkeypatch.setattr(isa, "cpu_features", lambda: CPUS["amx"])
    history = train(TinyNet(), synthetic, dataclasses.replace(config, precision="bf16"),
                    checkpoint=ckpt, progress=False).history   # an auto save, explicit bf16
    assert [h["precision"] for h in history] == ["bf16", "fp32", "bf16"]
    # explicit precisions that differ are different runs (the bf16 test above): refused


def test_unknown_precision_is_refused_with_the_choices():
    with pytest.raises(ConfigError, match="precision.*fp32.*bf16.*auto"):
        TrainConfig(precision="fp16")


def _is_nhwc(x: torch.Tensor) -> bool:
    return x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()


def _spy_loss(seen: list):
    """A cross-entropy loss that records, per step, what train() hands it: whether bf16
    autocast is on (and the logits' dtype), and whether a conv's weight and its output are in
    channels-last memory (the 1-channel batch itself is both layouts at once)."""
    def loss_fn(model, images, labels):
        logits = model(images)
        seen.append((torch.is_autocast_enabled("cpu"), logits.dtype,
                     model.features[4].weight.is_contiguous(memory_format=torch.channels_last),
                     _is_nhwc(model.features[:5](images))))
        return torch.nn.functional.cross_entropy(logits.float(), labels)
    return loss_fn


@pytest.mark.parametrize(("precision", "channels_last", "expected"), [
    ("fp32", False, (False, torch.float32, False, False)),
    ("fp32", True, (False, torch.float32, True, True)),
    ("bf16", False, (True, torch.bfloat16, True, True)),   # bf16 always runs channels-last
])
def test_each_step_runs_in_the_precision_and_memory_layout_asked_for(
        synthetic, precision, channels_last, expected):
    seen: list = []
    model = TinyNet()
    config = TrainConfig(epochs=1, batch_size=64, max_steps_per_epoch=3, precision=precision,
                         channels_last=channels_last)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # emulated-bf16 warning on CPUs without it
        train(model, synthetic, config, loss_fn=_spy_loss(seen), progress=False)
    assert seen == [expected] * 3
    assert not torch.is_autocast_enabled("cpu")   # and nothing leaks out of train()
    assert all(p.is_contiguous() for p in model.parameters())


def test_channels_last_trains_the_same_model_and_hands_it_back_contiguous(synthetic):
    """channels_last=True changes the memory layout only: the weights match the contiguous
    run's to float rounding, and the model comes back in contiguous memory."""
    runs = []
    for channels_last in (False, True):
        torch.manual_seed(0)
        model = TinyNet()
        train(model, synthetic, dataclasses.replace(CONFIG, epochs=2, channels_last=channels_last),
              progress=False)
        runs.append(model)
    assert all(p.is_contiguous() for p in runs[1].parameters())
    for a, b in zip(*(m.state_dict().values() for m in runs), strict=True):
        assert torch.allclose(a.float(), b.float(), atol=1e-4)


def test_a_slim_float16_checkpoint_stands_for_the_finished_run(synthetic, tmp_path):
    """train.slim_checkpoint: a finished run's config, history and weights (float16 here), no
    optimizer state; train() resumes from it without training, the weights back in float32
    within float16's rounding, and the last record says how they were kept."""
    from optbench.train import slim_checkpoint

    config = TrainConfig(epochs=2, batch_size=32, max_steps_per_epoch=3, seed=1)
    torch.manual_seed(0)
    trained = TinyNet()
    full = tmp_path / "full.ckpt"
    train(trained, synthetic, config, checkpoint=full, progress=False)
    slim = tmp_path / "slim.ckpt"
    summary = slim_checkpoint(full, slim, "float16")
    assert summary["epochs"] == 2 and summary["bytes_after"] < summary["bytes_before"] / 2
    saved = safe_torch_load(slim)
    assert "optimizer" not in saved and saved["history"][-1]["weights_stored_as"] == "float16"
    assert all(v.dtype == torch.float16 for v in saved["model"].values()
               if v.is_floating_point())
    fresh = TinyNet()
    result = train(fresh, synthetic, config, checkpoint=slim, progress=False)
    assert result.resumed_from_epoch == 2 and len(result.history) == 2   # nothing trained
    for name, value in trained.state_dict().items():
        got = fresh.state_dict()[name]
        assert got.dtype == value.dtype
        assert torch.allclose(got.float(), value.float(), rtol=2**-10, atol=1e-6), name
    # a config that would train on from it (more epochs) is refused as another config is
    with pytest.raises(ConfigError, match="different training config"):
        train(TinyNet(), synthetic, dataclasses.replace(config, epochs=3), checkpoint=slim,
              progress=False)


def test_an_unfinished_run_is_not_slimmed_and_a_slim_unfinished_file_is_refused(synthetic,
                                                                                 tmp_path):
    from optbench.io import atomic_torch_save
    from optbench.train import slim_checkpoint

    config = TrainConfig(epochs=2, batch_size=32, max_steps_per_epoch=2)
    ckpt = tmp_path / "run.ckpt"
    train(TinyNet(), synthetic, config, checkpoint=ckpt, progress=False, stop_after_epoch=1)
    with pytest.raises(ConfigError, match=r"unfinished \(1 of 2 epochs\)"):
        slim_checkpoint(ckpt, tmp_path / "slim.ckpt")
    state = safe_torch_load(ckpt)   # what an optimizer-less file of an unfinished run would be
    atomic_torch_save(ckpt, {k: state[k] for k in ("config", "model", "history")})
    with pytest.raises(ConfigError, match="without the optimizer's state, after 1 of 2"):
        train(TinyNet(), synthetic, config, checkpoint=ckpt, progress=False)
    with pytest.raises(ConfigError, match="dtype"):
        slim_checkpoint(ckpt, tmp_path / "x.ckpt", "int8")


def test_compiled_training_takes_the_eager_steps_and_resumes_either_way(synthetic, tmp_path):
    """compile=True trains the same weights as eager to float rounding, records it per
    epoch, leaves validation eager, and a checkpoint continues with compile switched."""
    config = TrainConfig(epochs=2, batch_size=64, max_steps_per_epoch=3, seed=3)
    runs = []
    for compile_ in (False, True):
        torch.manual_seed(0)
        model = TinyNet()
        before = dynamo_counts()
        result = train(model, synthetic, dataclasses.replace(config, compile=compile_),
                       val_data=synthetic, progress=False)
        assert [h["compiled"] for h in result.history] == [compile_] * 2
        assert (dynamo_counts()["frames_ok"] > before["frames_ok"]) == compile_
        runs.append(model)
    assert type(runs[1]) is TinyNet   # handed back as it came, not the compiled wrapper
    for a, b in zip(*(m.state_dict().values() for m in runs), strict=True):
        assert torch.allclose(a.float(), b.float(), atol=1e-4)
    ckpt = tmp_path / "run.ckpt"
    torch.manual_seed(0)
    train(TinyNet(), synthetic, config, checkpoint=ckpt, progress=False, stop_after_epoch=1)
    torch.manual_seed(0)
    resumed = TinyNet()
    result = train(resumed, synthetic, dataclasses.replace(config, compile=True),
                   checkpoint=ckpt, progress=False)
    assert result.resumed_from_epoch == 1
    assert [h["compiled"] for h in result.history] == [False, True]
    for a, b in zip(runs[0].state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.allclose(a.float(), b.float(), atol=1e-4)
