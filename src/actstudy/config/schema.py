"""The config schema: typed dataclasses that state every key, its type and its default, once.

Hydra composes `conf/` on top of `defaults()` (registered by `hydra_plugins.actstudy_config`), so the
files in `conf/` hold only what differs per option, and each option is one file. Objects a config names
(model, dataset reader, optimiser, activation) are built from its `_target_`; the node's other keys are
the target's own arguments, typed and checked against the target's signature. `parse_config` turns the
composed config into a `RunConfig` or raises `ConfigError` with one line naming the key, the bad value
and what is allowed: checked here rather than by OmegaConf's structured configs, whose errors span several
lines, do not say which values are allowed, and cannot type a key as "int or float".
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from omegaconf import DictConfig, OmegaConf

from actstudy.config.typed import ARGUMENTS, at_least, build, choice, target_arguments
from actstudy.credentials import HOW_TO_PASS, has_password, redact
from actstudy.errors import ConfigError as ConfigError  # where most modules import it from
from actstudy.errors import first_line
from actstudy.paths import CONF_DIR

RESUME_MODES = ("auto", "true", "false")
PROGRESS_MODES = ("auto", "bar", "log", "none")
DETERMINISTIC_MODES = ("auto", "true", "false")
ACCELERATORS = ("auto", "cpu", "gpu", "cuda")
PRECISIONS = ("32-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true", "64-true")  # Lightning's names
MAX_GENERATED = 200_000  # generated images at most (shapes: about 600 MB as uint8, several GB while drawn)
MAX_DEPTH = 100  # plain nets this deep do not train at all, and building deeper ones takes minutes
SEED_RANGE = (0, 2**32 - 1)  # what NumPy and Lightning's seed_everything accept (it re-draws others)
# DDP only: the monitor reads each layer's whole gradient, which FSDP and DeepSpeed shard across ranks.
STRATEGIES = ("auto", "ddp")


@dataclass(frozen=True)
class ModelConfig:
    """A classifier (conf/model/): `_target_` is built with the keys in `TARGET_GETS` plus its own."""

    TARGET_GETS: ClassVar = ("input_shape", "num_classes", "depth", "make_activation", "width", "batch_norm")
    _target_: str
    name: str
    width: int
    init: str = "auto"  # a scheme of actstudy.models.init.SCHEMES; auto: the one the activation names
    batch_norm: bool = False  # the control: plain nets are what the vanishing-gradient study is about
    head: str = "softmax"  # softmax | sigmoid: sigmoid outputs with Nielsen's cross-entropy (models/head.py)
    # A factor on every initialised weight: above 1 the signal and the back-propagated gradients grow
    # layer by layer (experiment=exploding: ReLU at twice He's scale).
    init_scale: float = 1.0
    arguments: dict[str, Any] = field(default_factory=dict)

    def check(self) -> None:
        from actstudy.models.head import HEADS
        from actstudy.models.init import SCHEMES

        at_least("model.width", self.width, 1)
        if not self.init_scale > 0:
            raise ConfigError(f"model.init_scale={self.init_scale}: must be above 0 (1 keeps the init)")
        choice("model.init", self.init, tuple(SCHEMES))
        choice("model.head", self.head, tuple(HEADS))


@dataclass(frozen=True)
class DataConfig:
    """A dataset (conf/data/): `_target_` reads it (given `data`, this config, if it takes one)."""

    TARGET_GETS: ClassVar = ()
    TARGET_MAY_GET: ClassVar = ("data",)
    _target_: str
    name: str
    batch_size: int  # the global batch, split evenly over the processes of a multi-device job
    train_images: int | None = None  # the official training set's size; null: generated on the fly
    train_size: int | None = None  # null: every training image left after the validation split
    val_size: int = 0  # carved from the training set with generator_seed
    test_size: int | None = None  # null: the whole test set
    generator_seed: int = 1234  # seed of the train/val split (and of generated images)
    crop_padding: int = 0  # random-crop augmentation padding, 0 = off
    flip: bool = False  # random horizontal flip
    normalize: bool = True  # standardise each channel (training split's mean/std); false: raw [0, 1] pixels
    arguments: dict[str, Any] = field(default_factory=dict)

    def check(self) -> None:
        at_least("data.batch_size", self.batch_size, 1)
        at_least("data.val_size", self.val_size, 0)
        at_least("data.crop_padding", self.crop_padding, 0)
        for key in ("train_size", "test_size"):
            value = getattr(self, key)
            if value is not None:
                at_least(f"data.{key}", value, 1)
        root = self.arguments.get("root")
        if root is not None and Path(root).exists() and not Path(root).is_dir():
            raise ConfigError(
                f"data.root={root}: is a file; give the folder that holds (or will hold) the data"
            )
        available = self.train_images
        if available is None:  # generated: train_size + val_size images are drawn
            for key in ("train_size", "test_size"):
                if getattr(self, key) is None:
                    raise ConfigError(
                        f"data.{key}=null: {self.name} images are generated; say how many "
                        f"(e.g. data.{key}=1000)"
                    )
            assert self.train_size is not None  # the loop above raised for None
            generated = self.train_size + self.val_size
            if generated > MAX_GENERATED:
                raise ConfigError(
                    f"data.train_size + data.val_size = {generated}: generating more than {MAX_GENERATED} "
                    f"{self.name} images needs several GB; use smaller sizes"
                )
            remaining = self.train_size
        else:
            if self.val_size >= available:
                raise ConfigError(
                    f"data.val_size={self.val_size}: {self.name} has {available} training images and the "
                    "validation split is carved from them; use a smaller data.val_size"
                )
            remaining = available - self.val_size
            if self.train_size is not None and self.train_size > remaining:
                raise ConfigError(
                    f"data.train_size={self.train_size}: only {remaining} {self.name} training images remain "
                    f"after data.val_size={self.val_size}; use at most {remaining}"
                )
            remaining = self.train_size or remaining
        if remaining < self.batch_size:
            raise ConfigError(
                f"data.train_size={remaining}: smaller than one batch (data.batch_size={self.batch_size}), "
                "so nothing would be trained; use more images or a smaller batch"
            )


@dataclass(frozen=True)
class SaturationConfig:
    """A unit is saturated where the activation's derivative at its pre-activation is below
    `derivative_below` x the derivative's maximum (found numerically: sigmoid 1/4, tanh 1): it passes
    back less than that fraction of the gradient it could."""

    derivative_below: float

    def check(self) -> None:
        if not 0 < self.derivative_below < 1:
            raise ConfigError(
                f"activation.saturated.derivative_below={self.derivative_below}: must be a fraction of the "
                "derivative's maximum in (0, 1) (e.g. 0.1)"
            )


@dataclass(frozen=True)
class DeadConfig:
    """A unit (MLP neuron, CNN channel) is dead when its output is <= `max_output` for every example and
    position of the monitored batch."""

    max_output: float = 0.0


@dataclass(frozen=True)
class ActivationConfig:
    """An activation (conf/activation/): the torch module and what "saturated" or "dead" means for it."""

    name: str
    module: dict[str, Any]  # {_target_: torch.nn.X, its arguments}
    init: str  # the scheme `model.init=auto` uses: xavier (saturating) or kaiming (ReLU family)
    saturated: SaturationConfig | None = None  # null: no saturated region (act/saturated not logged)
    dead: DeadConfig | None = None  # null: units cannot die (act/dead not logged)
    # The plain-SGD learning rate experiment=fair_comparison picked for this activation on shapes
    # (docs/results.md); experiment=quick_start trains with it. null: not measured.
    sgd_lr: float | None = None

    def check(self) -> None:
        from actstudy.models.init import ACTIVATION_SCHEMES

        if "_target_" not in self.module:
            raise ConfigError(f"activation.module of '{self.name}' needs a _target_ such as torch.nn.ReLU")
        choice("activation.init", self.init, ACTIVATION_SCHEMES)
        if self.sgd_lr is not None and not (self.sgd_lr > 0 and math.isfinite(self.sgd_lr)):
            raise ConfigError(f"activation.sgd_lr={self.sgd_lr}: must be a positive number or null")
        arguments = {k: v for k, v in self.module.items() if k != "_target_"}
        target_arguments(self.module["_target_"], arguments, (), (), "activation.module.")
        self._try_building()

    def _try_building(self) -> None:
        """Raise ConfigError unless the module builds and (for Kaiming) has a finite signal gain."""
        from hydra.utils import instantiate
        from torch import nn

        from actstudy.models.init import signal_gain

        try:
            module = instantiate(self.module)
        except Exception as exc:  # whatever the module raises: its first line says what
            first = first_line(exc)
            raise ConfigError(f"activation={self.name}: {self.module['_target_']} fails: {first}") from None
        if not isinstance(module, nn.Module):
            raise ConfigError(
                f"activation={self.name}: {self.module['_target_']} builds a {type(module).__name__}, not a "
                "torch module; name one such as torch.nn.Sigmoid"
            )
        try:
            gain = signal_gain(module) if self.init == "kaiming" else 1.0
        except Exception as exc:
            first = first_line(exc)
            raise ConfigError(f"activation={self.name}: {self.module['_target_']} fails: {first}") from None
        if not math.isfinite(gain) or gain <= 0:
            raise ConfigError(f"activation={self.name}: no finite He gain; use init: xavier in its file")


@dataclass(frozen=True)
class OptimizerConfig:
    """A torch.optim optimiser (conf/optimizer/): `_target_` is built with the parameters and `lr`."""

    TARGET_GETS: ClassVar = ("params", "lr")
    _target_: str
    name: str
    lr: float | None  # None only through an interpolation of a missing value: refused by check()
    arguments: dict[str, Any] = field(default_factory=dict)

    def check(self) -> None:
        if self.lr is None:  # experiment=quick_start's ${activation.sgd_lr} for an activation without one
            raise ConfigError(
                "optimizer.lr=null: this activation's file states no sgd_lr (experiment=quick_start uses "
                "it); give optimizer.lr=... or use sigmoid, tanh or relu"
            )
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError(f"optimizer.lr={self.lr}: must be a positive number (e.g. optimizer.lr=0.1)")
        self._try_building()
        momentum = self.arguments.get("momentum", 0.0)
        if not 0 <= momentum < 1:
            raise ConfigError(
                f"optimizer.momentum={momentum}: must be in [0, 1) (0.9 is usual; 0: plain SGD)"
            )
        at_least("optimizer.weight_decay", self.arguments.get("weight_decay", 0.0), 0.0)

    def _try_building(self) -> None:
        """Raise ConfigError if the optimiser refuses its arguments (e.g. Nesterov without momentum)."""
        import torch
        from hydra.utils import get_object

        try:
            get_object(self._target_)([torch.zeros(1, requires_grad=True)], lr=self.lr, **self.arguments)
        except (ValueError, TypeError, RuntimeError) as exc:
            first = first_line(exc)
            message = f"optimizer={self.name}: {self._target_} refuses its arguments: {first}"
            raise ConfigError(message) from None


@dataclass(frozen=True)
class TrainerConfig:
    """The arguments of lightning.Trainer that a study changes, plus how progress is shown."""

    max_epochs: int = 5
    accelerator: str = "auto"  # auto | cpu | gpu
    devices: int = 1  # processes per node, one per device (DDP when devices x num_nodes > 1)
    num_nodes: int = 1
    strategy: str = "auto"  # auto | ddp: several devices always train with DDP
    ddp_timeout_s: float = 120.0  # a collective waiting longer fails the job (a hung rank)
    precision: str = "32-true"  # bf16-mixed on GPUs
    limit_train_batches: int | float = 1.0  # float = fraction, int = number of batches
    limit_val_batches: int | float = 1.0
    limit_test_batches: int | float = 1.0
    log_every_n_steps: int = 10  # train/loss and train/acc
    deterministic: str = "auto"  # auto: true on CPU (bit-for-bit repeatable), false on GPU
    gradient_clip_val: float | None = None
    progress: str = "auto"  # auto: a bar in a terminal, plain log lines otherwise | bar | log | none
    checkpoint_every_n_steps: int | None = None  # extra mid-epoch last.ckpt (also every epoch)
    # auto: the CPUs allotted (SLURM_CPUS_PER_TASK, else the affinity) shared by the job's processes and a
    # local sweep's concurrent jobs (OMP_NUM_THREADS, if set, wins) | a number of torch intra-op threads
    threads: str = "auto"

    def check(self) -> None:
        at_least("trainer.max_epochs", self.max_epochs, 1)
        at_least("trainer.devices", self.devices, 1)
        at_least("trainer.num_nodes", self.num_nodes, 1)
        choice("trainer.accelerator", self.accelerator, ACCELERATORS)
        choice("trainer.strategy", self.strategy, STRATEGIES)
        if not self.ddp_timeout_s > 0:
            raise ConfigError(f"trainer.ddp_timeout_s={self.ddp_timeout_s}: must be > 0 seconds")
        at_least("trainer.log_every_n_steps", self.log_every_n_steps, 1)
        choice("trainer.deterministic", self.deterministic, DETERMINISTIC_MODES)
        choice("trainer.progress", self.progress, PROGRESS_MODES)
        choice("trainer.precision", self.precision, PRECISIONS)
        for key in ("limit_train_batches", "limit_val_batches", "limit_test_batches"):
            value = getattr(self, key)
            if value <= 0 or (isinstance(value, float) and value > 1):
                raise ConfigError(
                    f"trainer.{key}={value}: must be a fraction in (0, 1] or a whole number of batches >= 1"
                )
        if self.checkpoint_every_n_steps is not None:
            at_least("trainer.checkpoint_every_n_steps", self.checkpoint_every_n_steps, 1)
        if self.threads != "auto" and not (self.threads.isdigit() and int(self.threads) >= 1):
            raise ConfigError(
                f"trainer.threads={self.threads}: must be auto or a number of threads >= 1 "
                "(e.g. trainer.threads=4)"
            )


# MLflow's `experiments.name` column is String(256): its own check allows 500, which PostgreSQL refuses
EXPERIMENT_NAME_LENGTH = 256


@dataclass(frozen=True)
class TrackingConfig:
    """MLflow: where runs go."""

    uri: str | None = None  # null: $MLFLOW_TRACKING_URI, else the SQLite store mlruns/mlflow.db
    server_wait_s: float = 300.0  # a tracking server not answering longer (not a restart) fails the job
    experiment: str = "actstudy"
    log_checkpoint: bool = False  # upload the final weights as an artifact (the path is always a tag)
    system_metrics: bool = True  # MLflow's monitor: CPU, memory, GPU (pynvml) as system/* metrics, rank 0

    def check(self) -> None:
        at_least("tracking.server_wait_s", self.server_wait_s, 0.0)
        if not self.experiment.strip():
            raise ConfigError("tracking.experiment='': must be a name (e.g. tracking.experiment=actstudy)")
        if len(self.experiment) > EXPERIMENT_NAME_LENGTH:
            raise ConfigError(
                f"tracking.experiment: {len(self.experiment)} characters, more than MLflow stores "
                f"({EXPERIMENT_NAME_LENGTH}); choose a shorter name"
            )
        if self.uri is not None and has_password(self.uri):
            raise ConfigError(
                f"tracking.uri={redact(self.uri)}: a password in the config is recorded with the run "
                f"(params, tags, config files); {HOW_TO_PASS}"
            )


@dataclass(frozen=True)
class MonitorConfig:
    """The gradient-flow and activation monitor (per hidden layer); step 0 is always recorded."""

    enabled: bool = True
    every_n_steps: int = 50
    activations: bool = True  # forward hooks for act/* statistics (only on monitored steps)
    # curv/sharpness (power iteration on Hessian-vector products, actstudy.monitor.sharpness) every N steps;
    # None: off. Each measurement costs about `sharpness_iterations` backward passes.
    sharpness_every_n_steps: int | None = None
    sharpness_iterations: int = 20

    def check(self) -> None:
        at_least("monitor.every_n_steps", self.every_n_steps, 1)
        if self.sharpness_every_n_steps is not None:
            at_least("monitor.sharpness_every_n_steps", self.sharpness_every_n_steps, 1)
        at_least("monitor.sharpness_iterations", self.sharpness_iterations, 1)


@dataclass(frozen=True)
class ReportConfig:
    """How the end-of-sweep report compares settings; not part of a job's identity (it trains nothing)."""

    # Keys chosen per setting by validation (e.g. [optimizer.lr]): each setting (every other varying key
    # but the seed) is compared at the value with the best mean validation accuracy over its seeds.
    tune: list[str] = field(default_factory=list)

    def check(self) -> None:
        if len(set(self.tune)) < len(self.tune):
            raise ConfigError(f"report.tune={self.tune}: names a key twice")


@dataclass(frozen=True)
class RunConfig:
    """A whole job's config: the groups of conf/ and the top-level keys."""

    model: ModelConfig
    data: DataConfig
    activation: ActivationConfig
    optimizer: OptimizerConfig
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    monitor: MonitorConfig = field(default_factory=MonitorConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    depth: int = 4  # hidden blocks (CNN conv blocks / MLP hidden layers)
    seed: int = 0
    # auto: continue the job's unfinished run, keep a finished one; true: require one to continue; false: new
    resume: str = "auto"

    def check(self) -> None:
        at_least("depth", self.depth, 1)
        if self.depth > MAX_DEPTH:
            raise ConfigError(
                f"depth={self.depth}: must be <= {MAX_DEPTH} (plain nets this deep do not train at all, "
                "and building them takes minutes)"
            )
        if not SEED_RANGE[0] <= self.seed <= SEED_RANGE[1]:
            raise ConfigError(f"seed={self.seed}: must be in [{SEED_RANGE[0]}, {SEED_RANGE[1]}]")
        choice("resume", self.resume, RESUME_MODES)
        for key in self.report.tune:
            check_tunable(self, key)
        processes = self.trainer.devices * self.trainer.num_nodes
        if self.data.batch_size % processes:
            raise ConfigError(
                f"data.batch_size={self.data.batch_size}: the global batch is split evenly over "
                f"trainer.devices x trainer.num_nodes = {processes} processes; use a multiple of {processes}"
            )


def config_keys(cfg: Any, prefix: str = "") -> list[str]:
    """Return the dotted keys of a config's leaves (a `_target_` node's own arguments included)."""
    keys = []
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if f.name == ARGUMENTS:
            keys += [prefix + k for k in value]
        elif dataclasses.is_dataclass(value):
            keys += config_keys(value, f"{prefix}{f.name}.")
        else:
            keys.append(prefix + f.name)
    return keys


def schema_key(dotted: str) -> str:
    """Return `dotted` if the schema has that key (a field of `RunConfig`'s dataclasses, or an argument of a
    group that takes its target's own, e.g. `optimizer.momentum`); KeyError otherwise. Code that reads a
    run's params by name declares the names through this, so renaming a field breaks it at import."""
    cls: Any = RunConfig
    parts = dotted.split(".")
    for i, part in enumerate(parts):
        hints = typing.get_type_hints(cls)
        names = {f.name for f in dataclasses.fields(cls)}
        if part not in names:
            group = parts[0]
            if ARGUMENTS in names and any(  # one of the target's own arguments, which an option sets
                part in yaml_keys(path) for path in (CONF_DIR / group).glob("*.yaml")
            ):
                return dotted
            raise KeyError(f"{dotted}: the config schema has no key {'.'.join(parts[: i + 1])}")
        cls = next((a for a in typing.get_args(hints[part]) if a is not type(None)), hints[part])  # Optional
        if not dataclasses.is_dataclass(cls):
            if i + 1 < len(parts):
                raise KeyError(f"{dotted}: {'.'.join(parts[: i + 1])} is a value, not a group")
            return dotted
    return dotted


def yaml_keys(path: Path) -> set[str]:
    """Return the top-level keys of a config file."""
    return set(OmegaConf.load(path).keys())


def check_tunable(cfg: RunConfig, key: str) -> None:
    """Raise ConfigError unless `key` (an entry of `report.tune`) is a key of `cfg` that changes training."""
    from actstudy.config.identity import is_identity_key

    if key == "seed" or not is_identity_key(key):
        raise ConfigError(
            f"report.tune: cannot tune '{key}' (the seed, and keys that change nothing trained, are no "
            "tuning knobs); name a key such as optimizer.lr"
        )
    keys = config_keys(cfg)
    if key not in keys:
        near = difflib.get_close_matches(key, keys, n=1)
        hint = f"; did you mean {near[0]}?" if near else ""
        raise ConfigError(f"report.tune: '{key}' is no key of the config{hint} (--cfg job lists the keys)")


@dataclass
class JobSpec:
    """One job: its validated config plus what Hydra knows about it (name, folder, overrides, sweep)."""

    cfg: RunConfig
    resolved: dict[str, Any]  # the resolved config, for params and the config artifact
    fingerprint: str  # actstudy.config.identity.job_fingerprint(resolved)
    run_name: str
    output_dir: Path
    overrides: list[str]
    parent_run_id: str | None = None
    sweep_id: str | None = None


def parse_config(cfg: DictConfig | dict[str, Any]) -> RunConfig:
    """Return the validated, typed `RunConfig` for a composed config; raise `ConfigError` on bad input."""
    if isinstance(cfg, DictConfig):
        # the composed config's root is a mapping with string keys
        cfg = typing.cast(dict[str, Any], OmegaConf.to_container(cfg, resolve=True))
    cfg = {k: v for k, v in cfg.items() if k != "hydra"}
    return build(RunConfig, cfg, "")


def defaults(cls: type = RunConfig) -> dict[str, Any]:
    """Return every key that has a default in the schema, with its default: the base `conf/` builds on."""
    hints = typing.get_type_hints(cls)
    tree = {}
    for f in dataclasses.fields(cls):
        if f.name == ARGUMENTS:
            continue
        if f.default is not dataclasses.MISSING:
            tree[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING and not dataclasses.is_dataclass(hints[f.name]):
            tree[f.name] = f.default_factory()
        elif f.default_factory is not dataclasses.MISSING or dataclasses.is_dataclass(hints[f.name]):
            tree[f.name] = defaults(hints[f.name])
    return tree


def run_name(activation: str, depth: Any, seed: Any, varying: Sequence[str] = ()) -> str:
    """Return the run name `<activation>-d<depth>-s<seed>[_<key=value of the other keys the sweep varies>]`.

    Constant overrides stay out of the name (they are params and the sweep's tags), so names stay short.
    """
    name = f"{activation}-d{depth}-s{seed}"
    return f"{name}_{','.join(varying)}".replace("/", "_") if varying else name
