"""Config composition for every group option, and one clear line for each kind of bad input."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from actstudy.config.schema import ConfigError
from actstudy.models import build_model
from actstudy.paths import CONF_DIR, PROJECT_ROOT, default_tracking_uri
from tests.helpers.monitor import config


def options(group: str) -> list[str]:
    """Return the option names of a config group folder."""
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def test_every_group_has_the_expected_options():
    assert options("activation") == sorted(
        ["sigmoid", "tanh", "relu", "leaky_relu", "elu", "gelu", "silu", "softsign", "mish"]
    )
    assert options("model") == ["cnn", "mlp"]
    assert options("data") == ["cifar10", "digits", "mnist", "shapes"]
    assert options("optimizer") == ["adam", "sgd", "sgd_nesterov"]
    assert {"vanishing_gradient", "nielsen"} <= set(options("experiment"))


@pytest.mark.parametrize("activation", options("activation"))
@pytest.mark.parametrize("model", ["cnn", "mlp"])
def test_each_activation_and_model_composes_and_runs_forward(activation, model):
    cfg = config(f"activation={activation}", f"model={model}", "depth=8", "data=shapes")
    net = build_model(cfg, (3, 32, 32), 10)
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert len(net.blocks) == 8


@pytest.mark.parametrize("init", ["auto", "default", "xavier", "kaiming", "nielsen"])
def test_each_init_composes(init):
    cfg = config(f"model.init={init}", "data=shapes", "activation=tanh")
    build_model(cfg, (3, 32, 32), 10)


def test_nielsen_init_draws_biases_from_a_unit_normal():
    cfg = config("model=mlp", "model.init=nielsen", "model.width=400", "data=shapes", "depth=1")
    bias = build_model(cfg, (1, 28, 28), 10).blocks[0].layer.bias
    assert 0.85 < bias.std().item() < 1.15


@pytest.mark.parametrize("data", options("data"))
@pytest.mark.parametrize("optimizer", options("optimizer"))
def test_data_and_optimizer_options_compose(data, optimizer):
    cfg = config(f"data={data}", f"optimizer={optimizer}")
    assert cfg.data.name == data and cfg.optimizer.name == optimizer


@pytest.mark.parametrize("optimizer", options("optimizer"))
def test_each_optimizer_file_builds_its_target_with_its_own_arguments(optimizer):
    from omegaconf import OmegaConf

    from actstudy.training.module import ClassifierModule

    cfg = config(f"optimizer={optimizer}", "data=shapes", "depth=1")
    built = ClassifierModule(build_model(cfg, (3, 32, 32), 10), cfg.optimizer, 10).configure_optimizers()
    written = OmegaConf.load(CONF_DIR / "optimizer" / f"{optimizer}.yaml")
    assert f"{type(built).__module__}.{type(built).__name__}".endswith(written._target_.rsplit(".", 1)[-1])
    group = built.param_groups[0]
    for key, value in written.items():
        if key not in ("_target_", "name"):
            assert group[key] == (tuple(value) if key == "betas" else value), key


def test_the_new_one_file_options_change_what_is_built():
    nesterov = config("optimizer=sgd_nesterov", "data=shapes", "depth=1")
    assert nesterov.optimizer.arguments == {"momentum": 0.9, "nesterov": True, "weight_decay": 0.0}
    mish = build_model(config("activation=mish", "data=shapes", "depth=2"), (3, 32, 32), 10)
    assert all(isinstance(block.act, torch.nn.Mish) for block in mish.blocks)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["optimizer=sgd_nesterov", "optimizer.nesterov=maybe"], "optimizer.nesterov='maybe': must be true "
         "or false"),
        (["optimizer=adam", "optimizer.betas=[0.9]"], "optimizer.betas=[0.9]: must be a list of 2 numbers"),
        (["activation=leaky_relu", "activation.module.negative_slope=abc"], "activation.module."
         "negative_slope='abc': must be a number"),
        (["optimizer._target_=torch.optim.Nope"], "optimizer._target_=torch.optim.Nope: cannot be imported "
         "(module 'torch.optim' has no attribute 'Nope'); name a class or function, e.g. torch.optim.SGD"),
        (["model._target_=torch.nn.Linear"], "model._target_=torch.nn.Linear: does not take 'input_shape', "
         "which actstudy passes"),
        (["optimizer=sgd_nesterov", "optimizer.momentum=0"], "optimizer=sgd_nesterov: torch.optim.SGD "
         "refuses its arguments: Nesterov momentum requires a momentum and zero dampening"),
        (["optimizer=adam", "optimizer.betas=[0.9,1.5]"], "optimizer=adam: torch.optim.Adam refuses its "
         "arguments: Invalid beta parameter at index 1: 1.5"),
        (["~model.max_pools"], "model.max_pools: missing; actstudy.models.cnn.CNN needs it (e.g. "
         "model.max_pools=...)"),
    ],
)  # fmt: skip
def test_a_targets_own_keys_are_typed_and_checked_by_its_signature(overrides, expected):
    with pytest.raises(ConfigError) as error:
        config("data=shapes", *overrides)
    assert str(error.value) == expected


def test_a_key_the_target_does_not_take_is_named_with_what_it_takes():
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from actstudy.config.schema import parse_config

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        composed = OmegaConf.to_container(compose("config", overrides=["data=shapes"]))
    composed["optimizer"]["nesterow"] = True  # a typo in an option file
    with pytest.raises(ConfigError) as error:
        parse_config(composed)
    assert str(error.value) == (
        "unknown key 'optimizer.nesterow'; torch.optim.SGD takes: momentum, dampening, weight_decay, "
        "nesterov, maximize, foreach, differentiable, fused"
    )


def test_every_default_is_stated_once_in_the_schema():
    from omegaconf import OmegaConf

    from actstudy.config.schema import TrainerConfig, defaults

    assert defaults()["trainer"] == dataclasses.asdict(TrainerConfig())
    assert config("data=shapes").trainer == TrainerConfig()
    assert not any((CONF_DIR / group).exists() for group in ("trainer", "tracking", "monitor"))
    base = defaults()
    for group in ("model", "data", "activation", "optimizer"):
        for option in options(group):
            written = OmegaConf.to_container(OmegaConf.load(CONF_DIR / group / f"{option}.yaml"))
            assert not [k for k, v in written.items() if k in base[group] and base[group][k] == v], option


def test_batch_norm_control_and_depth_one():
    cfg = config("model.batch_norm=true", "depth=1", "data=shapes")
    net = build_model(cfg, (3, 32, 32), 10)
    assert isinstance(net.blocks[0].norm, torch.nn.BatchNorm2d)
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_experiment_presets():
    nielsen = config("experiment=nielsen")
    assert (nielsen.model.name, nielsen.model.width, nielsen.depth) == ("mlp", 30, 4)
    assert (nielsen.activation.name, nielsen.model.init, nielsen.optimizer.lr) == ("sigmoid", "nielsen", 0.1)
    assert (nielsen.data.name, nielsen.data.batch_size, nielsen.data.train_size) == ("mnist", 1000, 1000)
    assert (nielsen.model.head, nielsen.data.normalize) == ("sigmoid", False)
    vg = config("experiment=vanishing_gradient")
    assert (vg.optimizer.name, vg.model.init, vg.model.batch_norm) == ("sgd", "auto", False)


@pytest.mark.parametrize(
    "override",
    [
        "depth=0",
        "depth=abc",
        "optimizer.lr=-1",
        "model.width=0",
        "model.init=zeros",
        "resume=maybe",
        "model.head=foo",
        "data.normalize=maybe",
        "monitor.sharpness_every_n_steps=0",
        "monitor.sharpness_iterations=0",
    ],
)
def test_bad_values_raise_a_config_error_naming_the_key(override):
    with pytest.raises(ConfigError, match=override.split("=")[0].replace(".", r"\.")):
        config(override, "data=shapes")


@pytest.mark.parametrize(
    "args",
    [
        ["optimizer=adam", "optimizer.betas=[0.9,0.99]"],
        ["activation=leaky_relu", "activation.module.negative_slope=0.2"],
        ["activation=elu", "activation.saturated.derivative_below=0.2"],
        ["+trainer.extra=1"],
        ["~monitor"],
        ["-m", "depth=range(1,3)", "activation=relu,tanh"],
        ["-m", "activation=glob(*)"],
        ["experiment=vanishing_gradient"],
        ["hydra/launcher=slurm", "data.train_size=null"],
        ["-sc", "install=bash"],
        ["--cfg", "job", "depth=2"],
    ],
)
def test_the_preflight_lets_valid_commands_through(args):
    from actstudy.config.overrides import problem

    assert problem(["data=shapes", *args]) is None


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["activation=tanh,relu"], "activation=tanh,relu: several values make a sweep: add -m (or quote "
         "them for one string value)"),
        (["experiment=null"], "experiment=null: a config group takes one of its options (options: "
         "exploding, fair_comparison, init_vs_activation, nielsen, quick_start, vanishing_gradient);"
         " leave it out for the default"),
    ],
)  # fmt: skip
def test_the_preflight_explains_what_hydra_would_refuse(args, expected):
    from actstudy.config.overrides import problem

    assert problem(["data=shapes", *args]) == expected


def test_default_store_is_in_the_project_whatever_the_cwd(monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    assert default_tracking_uri() == f"sqlite:///{PROJECT_ROOT / 'mlruns' / 'mlflow.db'}"


def test_vanishing_gradient_preset_defines_the_27_job_sweep():
    from hydra import compose, initialize_config_dir

    from actstudy.jobs.sweep import job_overrides, validate_jobs

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(
            "config", overrides=["experiment=vanishing_gradient", "data=shapes"], return_hydra_config=True
        )
        jobs = job_overrides(cfg)
        assert validate_jobs(cfg, "config") == []
    settings = [
        (j["activation"], j["depth"], j["seed"]) for j in (dict(o.split("=", 1) for o in job) for job in jobs)
    ]
    assert sorted(settings) == sorted(
        (a, d, s) for a in ("sigmoid", "tanh", "relu") for d in "248" for s in "012"
    )
    assert all("data=shapes" in job for job in jobs)
