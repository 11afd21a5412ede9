"""Replay the next steps of an interrupted training run from its mid-epoch save, printing each
step's loss and global gradient norm (why did this run diverge, and would clipping have held?):

    PYTHONPATH=. .venv/bin/python scripts/replay_steps.py RECIPE MODEL CHECKPOINT \
        [--steps 8] [--clip 5.0]

MODEL is the recipe's [models.NAME] the step trained; CHECKPOINT a copy of its OUT/work/*.ckpt
with an unfinished epoch in it (optbench.train saves one every 10 minutes). The replay draws the
same batches, augmentation and random state as the run did, so with --clip 0 it repeats the
run's steps exactly. Plain cross-entropy steps only (a train step, not distillation); the
checkpoint is read, never written."""

import argparse

import torch

from optbench.errors import ConfigError
from optbench.io import safe_torch_load
from optbench.models import build_model
from optbench.pipeline.recipe import Recipe
from optbench.pipeline.run import load_data
from optbench.train import TrainConfig, epoch_draws, resume


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("recipe")
    parser.add_argument("model")
    parser.add_argument("checkpoint")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--clip", type=float, default=0.0, help="global grad norm (0 = off)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    recipe = Recipe.from_toml(args.recipe)
    state = safe_torch_load(args.checkpoint)
    if "partial" not in state:
        raise ConfigError(f"{args.checkpoint} holds no unfinished epoch to replay")
    config = TrainConfig.from_dict(state["config"])
    data = load_data(recipe.data)["train"]
    spec = recipe.models[args.model]
    model = build_model(spec.arch, spec.num_classes, recipe.data.channels, stem=spec.stem)
    run = resume(model, data, config, args.checkpoint)   # as train() resumes it
    optimizer, scheduler, steps, epoch = run.optimizer, run.scheduler, run.steps, run.epoch
    draws = epoch_draws(data, config, epoch, run.partial)
    start = draws.done.step
    criterion = torch.nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    clip = args.clip if args.clip > 0 else float("inf")
    print(f"epoch {epoch + 1}, from step {start} of {steps}; clip {args.clip or 'off'}")
    model.train()
    for step, (images, labels) in enumerate(draws.loader):
        if step < start:
            continue
        if step >= min(start + args.steps, steps):
            break
        loss = criterion(model(draws.views(images)), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        scheduler.step()
        print(f"step {step + 1}: loss {loss.item():.3f}, gradient norm {norm.item():.2f}, "
              f"lr {optimizer.param_groups[0]['lr']:.4f}", flush=True)


if __name__ == "__main__":
    main()
