"""The names the built-in trainer knows: models, datasets, optimizers, pruning methods.

Plain Python (no torch): the trainer modules build from these lists, and the pytest plugins in
``pytest_sweep.plugins`` declare and validate the config symbols from the same lists, so the
two sides never disagree.
"""

from __future__ import annotations

MODELS = ("resnet18", "lenet5")
#: Models of the reference that pytest-sweep does not have: its defconfigs may select them, and
#: such a trial is collected and skipped with the reason.
REFERENCE_ONLY_MODELS = ("resnet50", "gpt2")
DATASETS = ("cifar10", "mnist", "digits")
#: Training-set sizes, to know the steps per epoch before any data is loaded.
TRAIN_SIZES = {"cifar10": 50_000, "mnist": 60_000, "digits": 1_437}
DEFAULT_DATASET = {"resnet18": "cifar10", "lenet5": "mnist"}
DEFAULT_BATCH = {"resnet18": 128, "lenet5": 512}

# What the reference's code trains by default, per model (its ResNet-18 and LeNet-5 scripts differ).
DEFAULT_EPOCHS = {"resnet18": 100, "lenet5": 10}
#: The epoch at which the pruning ramp reaches its target.
DEFAULT_RAMP_END_EPOCH = {"resnet18": 75, "lenet5": 8}
#: Learning rate of SGD and of the Adam family: the ResNet-18 script trains the Adam family at
#: 0.001 x its configured 0.1; LeNet-5 trains every optimizer at 1e-3.
DEFAULT_LR = {"resnet18": {"sgd": 0.1, "adam": 1e-4}, "lenet5": {"sgd": 1e-3, "adam": 1e-3}}
#: The reference's ResNet-18 script multiplies the configured learning rate of the Adam family by this.
REFERENCE_ADAM_LR_SCALE = 0.001
#: Weight decay (on Conv/Linear weights) of SGD, Adam and the AdamW family (adamw, adamwadv, adamwspam).
DEFAULT_WEIGHT_DECAY = {
    "resnet18": {"sgd": 5e-4, "adam": 0.0, "adamw": 5e-4},
    "lenet5": {"sgd": 1e-4, "adam": 0.0, "adamw": 1e-4},
}

OPTIMIZERS = ("sgd", "adam", "adamw", "adamwadv", "adamwspam", "adamwprune")
DEFAULT_OPTIMIZER = "adamwprune"
#: The AdamW variants with AMSGrad and spike handling (a cosine floor of 1e-6, gradient clipping).
ADVANCED = ("adamwadv", "adamwspam")
#: AdamWPrune's update rules and pruning scores.
BASES = ("adam", "adamw", "adamwadv", "adamwspam")
VARIANTS = ("bitter0", "bitter1", "bitter3", "bitter7")
#: AdamWPrune variants of the reference (at HEAD) that pytest-sweep does not implement (skipped).
REFERENCE_ONLY_VARIANTS = ("bitter2", "bitter4", "bitter5", "bitter6", "bitter8", "bitter9")

PRUNING_METHODS = ("none", "magnitude", "movement", "state")
#: Shapes of the pruning ramp (the reference: cubic at HEAD; linear for magnitude and AdamWPrune at
#: the published commit, linear for movement always).
RAMPS = ("cubic", "linear")
#: Learning-rate schedules: cosine annealing per epoch, or a constant rate.
LR_SCHEDULES = ("cosine", "constant")
LOADERS = ("tensor", "dataloader")

#: Image shape and classes of each dataset as the models see it: (channels, size, classes).
IMAGE_SHAPES = {"cifar10": (3, 32, 10), "mnist": (1, 32, 10), "digits": (1, 8, 10)}
#: Test-set sizes (the digits split keeps 360 of its 1,797 images for testing).
TEST_SIZES = {"cifar10": 10_000, "mnist": 10_000, "digits": 360}
