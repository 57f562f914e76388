"""The config schema: typed dataclasses, and one-line errors for bad input before anything runs.

Hydra composes `conf/`; `parse_config` turns the result into a `RunConfig` or raises `ConfigError`
with one line naming the key, the bad value and what is allowed. The schema is checked here rather
than through Hydra's ConfigStore because Hydra's own type errors span several lines and do not say
which values are allowed.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

INITS = ("default", "xavier", "kaiming", "nielsen")
MODELS = ("cnn", "mlp")
DATASETS = ("cifar10", "mnist", "shapes")
OPTIMIZERS = ("sgd", "adam")
RESUME_MODES = ("auto", "true", "false")
PROGRESS_MODES = ("auto", "bar", "log", "none")
DETERMINISTIC_MODES = ("auto", "true", "false")
ACCELERATORS = ("auto", "cpu", "gpu", "cuda")
PRECISIONS = ("32-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true", "64-true")  # Lightning's names
# Official training-set sizes (the readers serve exactly these); a validation split is carved from them.
TRAIN_SET_SIZE = {"cifar10": 50_000, "mnist": 60_000}
MAX_GENERATED = 200_000  # shapes images generated at most (about 600 MB as uint8, several GB while drawn)
MAX_DEPTH = 100  # plain nets this deep do not train at all, and building deeper ones takes minutes
SEED_RANGE = (0, 2**32 - 1)  # what NumPy and Lightning's seed_everything accept (it re-draws others)
# DDP only: the monitor reads each layer's whole gradient, which FSDP and DeepSpeed shard across ranks.
STRATEGIES = ("auto", "ddp")


class ConfigError(ValueError):
    """A config value is wrong; the message is one line saying what and how to fix it."""


@dataclass(frozen=True)
class ModelConfig:
    name: str
    width: int
    init: str = "default"
    batch_norm: bool = False
    max_pools: int = 3

    def check(self) -> None:
        _choice("model", self.name, MODELS)
        _at_least("model.width", self.width, 1)
        _choice("model.init", self.init, INITS)
        _at_least("model.max_pools", self.max_pools, 0)


@dataclass(frozen=True)
class DataConfig:
    name: str
    batch_size: int
    root: str | None = None
    train_size: int | None = None
    val_size: int = 0
    test_size: int | None = None
    generator_seed: int = 1234
    crop_padding: int = 0
    flip: bool = False
    download: bool = True
    verify_checksums: bool = True

    def check(self) -> None:
        _choice("data", self.name, DATASETS)
        _at_least("data.batch_size", self.batch_size, 1)
        _at_least("data.val_size", self.val_size, 0)
        _at_least("data.crop_padding", self.crop_padding, 0)
        for key in ("train_size", "test_size"):
            value = getattr(self, key)
            if value is not None:
                _at_least(f"data.{key}", value, 1)
        if self.root is not None and Path(self.root).exists() and not Path(self.root).is_dir():
            raise ConfigError(
                f"data.root={self.root}: is a file; give the folder that holds (or will hold) the data"
            )
        available = TRAIN_SET_SIZE.get(self.name)
        if available is None:  # generated: train_size + val_size images are drawn
            generated = (self.train_size or 0) + self.val_size
            if generated > MAX_GENERATED:
                raise ConfigError(
                    f"data.train_size + data.val_size = {generated}: generating more than {MAX_GENERATED} "
                    "shapes images needs several GB; use smaller sizes"
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
        if remaining is not None and remaining < self.batch_size:
            raise ConfigError(
                f"data.train_size={remaining}: smaller than one batch (data.batch_size={self.batch_size}), "
                "so nothing would be trained; use more images or a smaller batch"
            )


@dataclass(frozen=True)
class SaturationConfig:
    low: float
    high: float


@dataclass(frozen=True)
class DeadConfig:
    max_output: float = 0.0


@dataclass(frozen=True)
class ActivationConfig:
    name: str
    module: dict[str, Any]
    saturated: SaturationConfig | None = None
    dead: DeadConfig | None = None

    def check(self) -> None:
        if "_target_" not in self.module:
            raise ConfigError(f"activation.module of '{self.name}' needs a _target_ such as torch.nn.ReLU")


@dataclass(frozen=True)
class OptimizerConfig:
    name: str
    lr: float
    momentum: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0

    def check(self) -> None:
        _choice("optimizer", self.name, OPTIMIZERS)
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError(f"optimizer.lr={self.lr}: must be a positive number (e.g. optimizer.lr=0.1)")
        if not 0 <= self.momentum < 1:
            raise ConfigError(
                f"optimizer.momentum={self.momentum}: must be in [0, 1) (0.9 is usual; 0: plain SGD)"
            )
        _at_least("optimizer.weight_decay", self.weight_decay, 0.0)


@dataclass(frozen=True)
class TrainerConfig:
    max_epochs: int = 5
    accelerator: str = "auto"
    devices: int = 1
    num_nodes: int = 1
    strategy: str = "auto"
    ddp_timeout_s: float = 120.0
    precision: str = "32-true"
    limit_train_batches: int | float = 1.0
    limit_val_batches: int | float = 1.0
    limit_test_batches: int | float = 1.0
    log_every_n_steps: int = 10
    deterministic: str = "auto"
    gradient_clip_val: float | None = None
    progress: str = "auto"
    checkpoint_every_n_steps: int | None = None

    def check(self) -> None:
        _at_least("trainer.max_epochs", self.max_epochs, 1)
        _at_least("trainer.devices", self.devices, 1)
        _at_least("trainer.num_nodes", self.num_nodes, 1)
        _choice("trainer.accelerator", self.accelerator, ACCELERATORS)
        _choice("trainer.strategy", self.strategy, STRATEGIES)
        if not self.ddp_timeout_s > 0:
            raise ConfigError(f"trainer.ddp_timeout_s={self.ddp_timeout_s}: must be > 0 seconds")
        _at_least("trainer.log_every_n_steps", self.log_every_n_steps, 1)
        _choice("trainer.deterministic", self.deterministic, DETERMINISTIC_MODES)
        _choice("trainer.progress", self.progress, PROGRESS_MODES)
        _choice("trainer.precision", self.precision, PRECISIONS)
        for key in ("limit_train_batches", "limit_val_batches", "limit_test_batches"):
            value = getattr(self, key)
            if value <= 0 or (isinstance(value, float) and value > 1):
                raise ConfigError(
                    f"trainer.{key}={value}: must be a fraction in (0, 1] or a whole number of batches >= 1"
                )
        if self.checkpoint_every_n_steps is not None:
            _at_least("trainer.checkpoint_every_n_steps", self.checkpoint_every_n_steps, 1)


@dataclass(frozen=True)
class TrackingConfig:
    uri: str | None = None
    experiment: str = "actstudy"
    log_checkpoint: bool = False

    def check(self) -> None:
        if not self.experiment.strip():
            raise ConfigError("tracking.experiment='': must be a name (e.g. tracking.experiment=actstudy)")


@dataclass(frozen=True)
class MonitorConfig:
    enabled: bool = True
    every_n_steps: int = 50
    activations: bool = True

    def check(self) -> None:
        _at_least("monitor.every_n_steps", self.every_n_steps, 1)


@dataclass(frozen=True)
class RunConfig:
    model: ModelConfig
    data: DataConfig
    activation: ActivationConfig
    optimizer: OptimizerConfig
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    monitor: MonitorConfig = field(default_factory=MonitorConfig)
    depth: int = 4
    seed: int = 0
    resume: str = "auto"

    def check(self) -> None:
        _at_least("depth", self.depth, 1)
        if self.depth > MAX_DEPTH:
            raise ConfigError(
                f"depth={self.depth}: must be <= {MAX_DEPTH} (plain nets this deep do not train at all, "
                "and building them takes minutes)"
            )
        if not SEED_RANGE[0] <= self.seed <= SEED_RANGE[1]:
            raise ConfigError(f"seed={self.seed}: must be in [{SEED_RANGE[0]}, {SEED_RANGE[1]}]")
        _choice("resume", self.resume, RESUME_MODES)
        processes = self.trainer.devices * self.trainer.num_nodes
        if self.data.batch_size % processes:
            raise ConfigError(
                f"data.batch_size={self.data.batch_size}: the global batch is split evenly over "
                f"trainer.devices x trainer.num_nodes = {processes} processes; use a multiple of {processes}"
            )


@dataclass
class JobSpec:
    """One job: its validated config plus what Hydra knows about it (name, folder, overrides, sweep)."""

    cfg: RunConfig
    resolved: dict[str, Any]  # the resolved config, for params and the config artifact
    fingerprint: str  # actstudy.identity.job_fingerprint(resolved)
    run_name: str
    output_dir: Path
    overrides: list[str]
    parent_run_id: str | None = None
    sweep_id: str | None = None


def parse_config(cfg: DictConfig | dict[str, Any]) -> RunConfig:
    """Return the validated, typed `RunConfig` for a composed config; raise `ConfigError` on bad input."""
    if isinstance(cfg, DictConfig):
        cfg = OmegaConf.to_container(cfg, resolve=True)
    cfg = {k: v for k, v in cfg.items() if k != "hydra"}
    return _build(RunConfig, cfg, "")


def run_name(activation: str, depth: Any, seed: Any, varying: list[str] = ()) -> str:
    """Return the run name `<activation>-d<depth>-s<seed>[_<key=value of the other keys the sweep varies>]`.

    Constant overrides stay out of the name (they are params and the sweep's tags), so names stay short.
    """
    name = f"{activation}-d{depth}-s{seed}"
    return f"{name}_{','.join(varying)}".replace("/", "_") if varying else name


def _build(cls: type, node: Any, prefix: str) -> Any:
    if not isinstance(node, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: expected a mapping, got {node!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(node) - names)
    if unknown:
        raise ConfigError(
            f"unknown key '{prefix}{unknown[0]}'; known keys under '{prefix.rstrip('.') or 'config'}': "
            + ", ".join(sorted(names))
        )
    values = {}
    for f in dataclasses.fields(cls):
        key = prefix + f.name
        if f.name not in node:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"missing key '{key}'")
            continue
        values[f.name] = _convert(hints[f.name], node[f.name], key)
    obj = cls(**values)
    if hasattr(obj, "check"):
        obj.check()
    return obj


def _convert(tp: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            if len(args) < len(typing.get_args(tp)):
                return None
            raise ConfigError(f"{key}: must not be null")
        if set(args) == {int, float}:  # Lightning reads an int limit as a count, a float as a fraction
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return value
            raise ConfigError(f"{key}={value!r}: must be a number")
        return _convert(args[0], value, key)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key + ".")
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}={value!r}: must be true or false")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{key}={value!r}: must be an integer")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{key}={value!r}: must be a number")
    if tp is str:
        if isinstance(value, bool):  # `resume=true` arrives as a YAML boolean
            return str(value).lower()
        if isinstance(value, (str, int, float)):
            return str(value)
        raise ConfigError(f"{key}={value!r}: must be a string")
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or len(value) != len(typing.get_args(tp)):
            raise ConfigError(f"{key}={value!r}: must be a list of {len(typing.get_args(tp))} numbers")
        return tuple(_convert(a, v, key) for a, v in zip(typing.get_args(tp), value, strict=True))
    if origin is dict:
        if isinstance(value, dict):
            return value
        raise ConfigError(f"{key}={value!r}: must be a mapping")
    return value


def _at_least(key: str, value: float, minimum: float) -> None:
    if value < minimum:
        raise ConfigError(f"{key}={value}: must be >= {minimum}")


def _choice(key: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{key}={value!r}: must be one of {', '.join(allowed)}")
