"""The names the built-in trainer knows: models, datasets, optimizers, pruning methods.

Plain Python (no torch): the trainer modules build from these lists, and the pytest plugins in
``pytest_sweep.plugins`` declare and validate the config symbols from the same lists, so the
two sides never disagree.
"""

from __future__ import annotations

MODELS = ("resnet18", "lenet5")
DATASETS = ("cifar10", "mnist", "digits")
#: Training-set sizes, to know the steps per epoch before any data is loaded.
TRAIN_SIZES = {"cifar10": 50_000, "mnist": 60_000, "digits": 1_437}
DEFAULT_DATASET = {"resnet18": "cifar10", "lenet5": "mnist"}
DEFAULT_BATCH = {"resnet18": 128, "lenet5": 512}

OPTIMIZERS = ("sgd", "adam", "adamw", "adamwadv", "adamwspam", "adamwprune")
DEFAULT_OPTIMIZER = "adamwprune"
#: The AdamW variants with AMSGrad and spike handling (a cosine floor of 1e-6, gradient clipping).
ADVANCED = ("adamwadv", "adamwspam")
#: AdamWPrune's update rules and pruning scores.
BASES = ("adam", "adamw", "adamwadv", "adamwspam")
VARIANTS = ("bitter0", "bitter1", "bitter3", "bitter7")

PRUNING_METHODS = ("none", "magnitude", "movement", "state")
LOADERS = ("tensor", "dataloader")
