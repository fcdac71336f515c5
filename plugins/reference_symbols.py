"""The reference's defconfig symbols that pytest-sweep does not declare natively, by what they become.

Read from the reference's ResNet-18 and LeNet-5 defconfigs and its ``Kconfig*`` files
(``shared/reference/test-matrix.md``).  :mod:`pytest_sweep.plugins.reference` declares every one
of them, so a reference defconfig passes the unknown-symbol check, and rewrites a file that sets
any of them:

- **selection** symbols (``*_MODE_*``, ``*_ENABLE_*``, ``SPARSITY_ENABLE_*``, the older ``TEST_*``
  spellings...) become the runs' ``CONFIG_MODEL`` / ``CONFIG_OPTIMIZER`` /
  ``CONFIG_PRUNING_METHOD`` / ``CONFIG_TARGET_SPARSITY`` / ``CONFIG_ADAMWPRUNE_VARIANT``;
- **aliases** are renamed to the symbol of ours that means the same;
- **no-effect** symbols (loaders, monitoring, checkpoints, outputs, trackers, logging) are accepted
  and listed once per file;
- **not implemented** symbols change training in the reference but not here; each file names the
  ones it sets, unless the value is what pytest-sweep does anyway.
"""

from __future__ import annotations

from pytest_sweep.matrix import Symbol
from pytest_sweep.trainers.names import OPTIMIZERS, PRUNING_METHODS

#: The reference's models, in the order its runner lists them; pytest-sweep has the first two.
REFERENCE_MODELS = ("lenet5", "resnet18", "resnet50", "gpt2")
#: The sparsity levels of ``SPARSITY_ENABLE_NN`` / ``TEST_SPARSITY_NN``.
LEVELS = ("50", "70", "90", "95", "99")
#: AdamWPrune's variants as the reference names them (``*_ADAMWPRUNE_VARIANT_BITTERn``).
REFERENCE_VARIANTS = tuple(f"bitter{n}" for n in range(10))
#: Model prefixes of the per-model variant selections.
VARIANT_PREFIXES = ("LENET5", "RESNET18")


def _upper(names: tuple[str, ...]) -> list[str]:
    return [n.upper() for n in names]


#: Selection symbols (all bools), without the ``CONFIG_`` prefix.
SELECTION_BOOLS = (
    ["MODEL_MODE_MULTIPLE", "TEST_MATRIX_MODE", "MODEL_LENET5", "MODEL_RESNET18"]
    + [f"MODEL_ENABLE_{m}" for m in _upper(REFERENCE_MODELS)]
    + [f"MODEL_SELECT_{m}" for m in ("RESNET50", "GPT2")]
    + [f"TEST_MODEL_{m}" for m in _upper(REFERENCE_MODELS)]
    + ["OPTIMIZER_MODE_SINGLE", "OPTIMIZER_MODE_MULTIPLE", "OPTIMIZER_MODE_NONE"]
    + [f"OPTIMIZER_ENABLE_{o}" for o in _upper(OPTIMIZERS)]
    + [f"TEST_OPTIMIZER_ENABLED_{o}" for o in _upper(OPTIMIZERS)]
    + ["PRUNING_MODE_NONE", "PRUNING_MODE_SINGLE", "PRUNING_MODE_MULTIPLE"]
    + [f"PRUNING_SELECT_{m}" for m in _upper(PRUNING_METHODS)]
    + [f"PRUNING_ENABLE_{m}" for m in _upper(PRUNING_METHODS)]
    + [f"PRUNING_ENABLED_{m}" for m in _upper(PRUNING_METHODS)]
    + [f"TEST_PRUNING_{m}" for m in _upper(PRUNING_METHODS)]
    + [f"SPARSITY_ENABLE_{n}" for n in LEVELS]
    + [f"TEST_SPARSITY_{n}" for n in LEVELS]
    + [f"{p}_ADAMWPRUNE_VARIANT_{v.upper()}" for p in VARIANT_PREFIXES for v in REFERENCE_VARIANTS]
)
#: Selection symbols with a comma-separated list as value.
SELECTION_LISTS = ("TEST_MODELS", "TEST_OPTIMIZERS", "TEST_PRUNING_METHODS")

#: Aliases: the reference's name -> ours (same meaning, same value).
ALIASES = {
    "RESNET18_EPOCHS": "NUM_EPOCHS",
    "RESNET18_BATCH_SIZE": "BATCH_SIZE",
    "RESNET18_BASE_LR": "LEARNING_RATE",
    "COMPILE_MODEL": "COMPILE",
    "MIXED_PRECISION": "AMP",
    "ADAMW_BETA1": "ADAM_BETA1",
    "ADAMW_BETA2": "ADAM_BETA2",
    "ADAMW_WEIGHT_DECAY": "WEIGHT_DECAY",
    "ADAMWPRUNE_WARMUP_STEPS": "PRUNING_WARMUP",
    "ADAMWPRUNE_FREQUENCY": "PRUNING_FREQUENCY",
    "ADAMWPRUNE_RAMP_END_EPOCH": "PRUNING_RAMP_END_EPOCH",
    "ADAMWPRUNE_TARGET_SPARSITY": "TARGET_SPARSITY",
}
#: Boolean aliases whose ``y`` sets one of our symbols to a value: name -> (ours, value).
BOOL_ALIASES = {f"ADAMWPRUNE_BASE_{b.upper()}": ("ADAMWPRUNE_BASE_OPTIMIZER", b) for b in OPTIMIZERS[1:5]}
#: A dataset for one model: name -> (model, dataset or None for the value given).
DATASET_ALIASES = {
    "LENET5_DATASET_MNIST": ("lenet5", "mnist"),
    "LENET5_DATASET": ("lenet5", None),
    "RESNET18_DATASET_CIFAR10": ("resnet18", "cifar10"),
    "RESNET18_DATASET": ("resnet18", None),
}
#: The variant AdamWPrune uses when no ``*_ADAMWPRUNE_VARIANT_BITTERn`` is chosen.
DEFAULT_VARIANT_ALIASES = ("LENET5_ADAMWPRUNE_DEFAULT_VARIANT", "RESNET18_ADAMWPRUNE_DEFAULT_VARIANT")

#: Machinery with no effect on what pytest-sweep trains: name -> is a bool.
NO_EFFECT = {
    **dict.fromkeys(
        [
            "PIN_MEMORY",
            "PERSISTENT_WORKERS",
            "GPU_WARMUP",
            "GPU_MONITOR",
            "INFERENCE_TEST",
            "SAVE_CHECKPOINT",
            "ENABLE_WANDB",
            "ENABLE_TRACKIO",
            "VERBOSE",
            "DEBUG",
            "PROFILE",
            "PRUNING_LOG_SPARSITY",
            "PRUNING_SAVE_MASKS",
            "PRUNING_VISUALIZE_MASKS",
            "HYPER_PARAM_AUTO",
            "COMPILE_AUTO",
            "ADAMWPRUNE_ENABLE_PRUNING",
            "ENABLE_HIERARCHICAL_TIERING",
            "TIERING_EMULATED",
            "TIERING_ADAM_STATE",
            "TIERING_JSON_OUTPUT",
            "TIERING_INFERENCE_BENCHMARK",
            "TIERING_GENERATE_JSON",
        ],
        True,
    ),
    **dict.fromkeys(
        [
            "NUM_WORKERS",
            "PREFETCH_FACTOR",
            "GPU_MONITOR_INTERVAL",
            "INFERENCE_BATCH_SIZES",
            "CHECKPOINT_INTERVAL",
            "OUTPUT_DIR",
            "JSON_OUTPUT",
            "TRACKER_PROJECT",
            "LOG_LEVEL",
            "NUM_CLASSES",
            "RESNET18_NUM_CLASSES",
            "LENET5_NUM_CLASSES",
            "ADAMWPRUNE_PRUNING_METHOD",
            "TIERING_HBM_THRESHOLD",
            "TIERING_CPU_THRESHOLD",
        ],
        False,
    ),
}

#: Settings that change what the reference trains but that pytest-sweep does not implement:
#: name -> (is a bool, the value that matches what pytest-sweep does, or None).
NOT_IMPLEMENTED: dict[str, tuple[bool, str | None]] = {
    "GRADIENT_CLIP_NORM": (False, None),
    "ADV_USE_AMSGRAD": (True, "y"),
    "ADV_WEIGHT_DECAY": (False, None),
    "ADV_USE_COSINE_ANNEALING": (True, "y"),
    "ADV_COSINE_ETA_MIN": (False, None),
    "SPAM_WARMUP": (True, "n"),
    "SPAM_WARMUP_STEPS": (False, "0"),
    "SPAM_SPIKE_THRESHOLD": (False, "2.0"),
    "SPAM_PERIODIC_RESET": (True, None),
    "ADAM_EPSILON": (False, "1e-8"),
    "ADAMW_EPSILON": (False, "1e-8"),
    "SGD_WEIGHT_DECAY": (False, None),
    "ADAM_WEIGHT_DECAY": (False, None),
    "STATE_PRUNING_STRATEGY": (False, None),
    "STATE_PRUNING_MOMENTUM_WEIGHT": (False, None),
    "MOVEMENT_PRUNING_USE_GRADIENT": (True, "n"),
    "MOVEMENT_PRUNING_BETA": (False, None),
    "MAGNITUDE_PRUNING_STRUCTURED": (True, "n"),
    "MAGNITUDE_PRUNING_NORM": (False, None),
    "RESNET18_USE_AUGMENTATION": (True, "y"),
    "RESNET18_USE_COSINE_SCHEDULE": (True, "y"),
    "TARGET_EFFECTIVE_BATCH": (False, None),
    "RESNET18_MAX_TIME": (False, None),
    "LENET5_MAX_TIME": (False, None),
    "LENET5_ENABLE_TOKENIZER": (True, "n"),
    "LENET5_TOKENIZER_SAVE_PATH": (False, None),
    "LENET5_SPLINE_CONTROL_POINTS": (False, None),
    "LENET5_PCA_WHITEN": (True, None),
    "LENET5_PCA_COMPONENTS": (False, None),
    "TEST_TOKENIZER_METHODS": (False, "none"),
    "TEST_TOKENIZER_BASELINE": (True, None),
    "TEST_TOKENIZER_PCA": (True, "n"),
    "TEST_TOKENIZER_SPLINE_PCA": (True, "n"),
}

#: Reference symbols our own plugins also declare (``CONFIG_NUM_WORKERS``: the dataloader path's workers).
#: In a defconfig they are the reference's machinery (no effect, named in the notes); they never
#: mark a file as a defconfig on their own.
SHARED_WITH_OURS = frozenset({"NUM_WORKERS"})

#: Ours, declared by this plugin: train as the reference's code did at its published commit.
AS_PUBLISHED = "REFERENCE_AS_PUBLISHED"


def reference_symbols() -> list[Symbol]:
    """Every symbol above, declared for the unknown-symbol check and ``pytest --sweep-symbols``."""
    out = [
        Symbol(f"CONFIG_{n}", "bool", None, "The reference's run selection (read into the runs)")
        for n in SELECTION_BOOLS
    ]
    out += [
        Symbol(f"CONFIG_{n}", "str", None, "The reference's run selection, a,b,c (read into the runs)")
        for n in SELECTION_LISTS
    ]
    for name, ours in ALIASES.items():
        out.append(Symbol(f"CONFIG_{name}", "str", None, f"The reference's name for CONFIG_{ours}"))
    for name, (ours, value) in BOOL_ALIASES.items():
        out.append(Symbol(f"CONFIG_{name}", "bool", None, f'The reference\'s CONFIG_{ours}="{value}"'))
    for name, (model, dataset) in DATASET_ALIASES.items():
        what = f'"{dataset}"' if dataset else "its value"
        kind = "bool" if dataset else "str"
        out.append(Symbol(f"CONFIG_{name}", kind, None, f"The reference's CONFIG_DATASET={what} for {model}"))
    out += [
        Symbol(f"CONFIG_{n}", "str", None, "The reference's CONFIG_ADAMWPRUNE_VARIANT") for n in DEFAULT_VARIANT_ALIASES
    ]
    for name, is_bool in NO_EFFECT.items():
        if name in SHARED_WITH_OURS:
            continue  # declared by our own plugins, with a meaning of their own outside a defconfig
        out.append(
            Symbol(f"CONFIG_{name}", "bool" if is_bool else "str", None, "The reference's; no effect in pytest-sweep")
        )
    for name, (is_bool, _) in NOT_IMPLEMENTED.items():
        out.append(
            Symbol(
                f"CONFIG_{name}",
                "bool" if is_bool else "str",
                None,
                "The reference's; changes its training, not implemented in pytest-sweep (named per file)",
            )
        )
    out.append(
        Symbol(
            f"CONFIG_{AS_PUBLISHED}",
            "bool",
            False,
            "Train a ResNet-18 defconfig as the reference's code did at cf07123, the commit behind its published "
            "table ('state' runs are AdamW, weight decay 0, + movement; pruning every 100 steps, a linear ramp to "
            "step 3000; fp32)",
        )
    )
    return out
