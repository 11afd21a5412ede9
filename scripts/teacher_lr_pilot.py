"""The flagship teacher's learning-rate pilot: ResNet50 with the small-pool stem, crop + flip
augmentation, 6 x 40 steps (the first 40 a linear warm-up) at the peak lr given, validation on
1000 images after each 40: `PYTHONPATH=. .venv/bin/python scripts/teacher_lr_pilot.py 0.02`.
It answers "does this lr blow up early?", not "how good will the teacher be"."""

import sys

import torch

from optbench.augment import AugmentConfig
from optbench.data import ImageTransform, load_fashion_mnist
from optbench.models import build_model
from optbench.train import TrainConfig, train

torch.set_num_threads(2)
tf = ImageTransform(size=32, channels=1)
data = load_fashion_mnist("train", transform=tf, download=False)
val = load_fashion_mnist("val", transform=tf, limit=1000, download=False)
config = TrainConfig(epochs=6, batch_size=128, lr=float(sys.argv[1]), warmup_epochs=1.0,
                     max_steps_per_epoch=40, augment=AugmentConfig(crop_padding=4, hflip=True))
for record in train(build_model("resnet50", 10, 1, stem="small-pool"), data, config,
                    val_data=val, progress=False).history:
    print(record, flush=True)
