"""MobileNetV3 through PT2E int8 on real data: does every conv/linear get int8, and what does it
cost? Trains small and large (small-input stem, 1x32x32) for 2 epochs on 8,000 Fashion-MNIST
images with AdamW, re-estimates BatchNorm statistics (after so short a run the running averages
lag the weights: eval accuracy sat at chance without it, 11% vs 65% with batch statistics, seen
on MobileNetV2 here), quantizes with ptq-pt2e and compares on 2,000 test images.

    python scripts/mnv3_pt2e_check.py      # ~3 min on 2 cores
"""

import warnings

import torch

from optbench.data import ImageTransform, load_fashion_mnist, make_loader
from optbench.measure import agreement, collect_logits, top1_accuracy
from optbench.models import build_model
from optbench.train import TrainConfig, train
from optbench.transforms import Context, optimize
from optbench.transforms.quantize import PT2EQuantConfig


@torch.no_grad()
def recalibrate_bn(model, data, batches=40):
    for mod in model.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.reset_running_stats()
            mod.momentum = None  # cumulative average over the batches below
    model.train()
    for i, (images, _) in enumerate(make_loader(data, 64)):
        if i >= batches:
            break
        model(images)
    return model.eval()


def main():
    warnings.simplefilter("ignore")
    tf = ImageTransform(size=32, channels=1)
    train_data = load_fashion_mnist("train", transform=tf, limit=8000)
    test = load_fashion_mnist("test", transform=tf, limit=2000)
    for arch in ("mobilenet_v3_small", "mobilenet_v3_large"):
        torch.manual_seed(0)
        model = build_model(arch, num_classes=10, in_channels=1, small_input=True)
        train(model, train_data, TrainConfig(epochs=2, batch_size=64, lr=0.002,
                                             optimizer="adamw"), progress=False)
        model = recalibrate_bn(model, train_data)
        ctx = Context(example_input=test.batch(0, 2), calib_data=train_data, progress=False)
        int8 = optimize(model, PT2EQuantConfig(calibration_batches=8), ctx)
        loader = make_loader(test, 200)
        fp32, labels = collect_logits(lambda x, m=model: m(x).detach().numpy(), loader)
        q, _ = collect_logits(lambda x, m=int8.model: m(x).detach().numpy(), loader)
        print(f"{arch}: {int8.info['ops']}; top-1 fp32 {top1_accuracy(fp32, labels):.4f}, int8 "
              f"{top1_accuracy(q, labels):.4f}; top-1 agreement "
              f"{agreement(fp32, q).top1_agreement:.4f}")


if __name__ == "__main__":
    main()
