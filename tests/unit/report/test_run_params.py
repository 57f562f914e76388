"""A run's params are read back typed, by names the schema vouches for: renaming a field breaks the report at
import instead of silently disabling the claims that compared its params with string literals."""

from __future__ import annotations

import pytest

from actstudy.config.schema import schema_key
from actstudy.report.claim_rules import auto_init, plain
from actstudy.report.collect import RunData, parse_param


def test_the_report_names_only_keys_the_schema_has():
    for key in ("model.batch_norm", "optimizer.momentum", "activation.dead.max_output", "depth"):
        assert schema_key(key) == key
    for wrong, why in [
        ("model.batchnorm", "the config schema has no key model.batchnorm"),
        ("optimizer.momentun", "the config schema has no key optimizer.momentun"),
        ("depth.blocks", "depth is a value, not a group"),
    ]:
        with pytest.raises(KeyError, match=why):
            schema_key(wrong)


def test_params_come_back_as_the_values_the_config_had():
    texts = ["False", "True", "None", "0", "0.1", "1e-05", "[1, 2]", "auto", "relu"]
    assert [parse_param(t) for t in texts] == [False, True, None, 0, 0.1, 1e-05, [1, 2], "auto", "relu"]


def run(**params: str) -> RunData:
    return RunData(name="r", params=params, tags={}, outcome="completed", wall_time_s=1.0)


def test_claims_read_typed_values_not_strings():
    assert plain(run()) and plain(run(**{"model.batch_norm": "False"}))
    assert not plain(run(**{"model.batch_norm": "True"}))
    assert auto_init(run(**{"model.init": "auto", "model.init_scale": "1.0"}))
    assert auto_init(run(**{"model.init": "auto", "model.init_scale": "1"}))  # an int is the same scale
    assert not auto_init(run(**{"model.init": "auto", "model.init_scale": "2.0"}))
