"""What a job and a sweep are: fingerprints of what they train and measure, and the folders named by them.

A job is its config: two commands whose resolved configs differ in any key that can change what is
trained or measured are different jobs, with different folders and runs, whatever their command lines
look like. A sweep is its command: the same sweep command, re-run, is the same sweep.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Mapping
from typing import Any, cast

from omegaconf import DictConfig, ListConfig, OmegaConf

# The keys that cannot change what is trained or measured: where things are stored or read from, how
# progress is shown, how to resume, how long to wait. Every other key is part of a job's identity.
NOT_IDENTITY = (
    "resume",
    "tracking",
    "report",
    "activation.sgd_lr",  # used only through optimizer.lr, which is part of the identity
    "trainer.progress",
    "trainer.threads",
    "trainer.ddp_timeout_s",
    "trainer.checkpoint_every_n_steps",
    "data.root",
    "data.download",
    "data.verify_checksums",
)


def digest(value: Any) -> str:
    """Return the SHA-256 hex digest of a JSON-able value (keys sorted; other values as `str`): the one
    digest of configs and parameters (a job's fingerprint, a sweep's, the ranks' check, a data cache key),
    each cut to the length it needs."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def identity_config(resolved: Mapping[str, Any]) -> dict[str, Any]:
    """Return the resolved config without the NOT_IDENTITY keys (and without Hydra's own node)."""
    tree = json.loads(json.dumps({k: v for k, v in resolved.items() if k != "hydra"}, default=str))
    for dotted in NOT_IDENTITY:
        *parents, leaf = dotted.split(".")
        node = tree
        for key in parents:
            node = node.get(key, {})
        if isinstance(node, dict):
            node.pop(leaf, None)
    return tree


def job_fingerprint(resolved: Mapping[str, Any]) -> str:
    """Return the job's fingerprint: 12 hex digits of the digest of its identity config."""
    return digest(identity_config(resolved))[:12]


def job_folder(resolved: Mapping[str, Any]) -> str:
    """Return the job's folder name: `<activation>-d<depth>-s<seed>-<fingerprint[:8]>`."""
    from actstudy.config.schema import run_name

    name = run_name(resolved["activation"]["name"], resolved["depth"], resolved["seed"])
    return f"{name}-{job_fingerprint(resolved)[:8]}"


def sweep_fingerprint(overrides: list[str]) -> str:
    """Return a sweep's fingerprint: the digest of its command's overrides, in any order."""
    return digest(sorted(overrides))[:12]


def _job_folder_resolver(*, _root_: DictConfig) -> str:
    """`${actstudy_job_folder:}`: the job folder of the config being composed (Hydra's run/sweep subdir)."""
    resolved: dict[str, Any] = {}
    for key in _root_:
        if key == "hydra":
            continue
        node = _root_[key]
        resolved[cast(str, key)] = (  # a config's root keys are strings
            OmegaConf.to_container(node, resolve=True) if isinstance(node, (DictConfig, ListConfig)) else node
        )
    return job_folder(resolved)


def command_overrides(argv: list[str]) -> list[str]:
    """Return the overrides of a command line that say what a sweep trains.

    Hydra's own settings and the NOT_IDENTITY keys (`resume=true`, another store...) leave it out: the
    same sweep, re-run with them, is still the same sweep.
    """
    kept = []
    for arg in argv:
        key = arg.split("=", 1)[0].lstrip("+~")
        if "=" in arg and not arg.startswith("-") and not key.startswith("hydra") and not _not_identity(key):
            kept.append(arg)
    return kept


def _not_identity(key: str) -> bool:
    return any(key == k or key.startswith(f"{k}.") for k in NOT_IDENTITY)


def is_identity_key(key: str) -> bool:
    """Return whether the dotted `key` is part of a job's identity (can change what is trained)."""
    return not _not_identity(key)


def sweep_identity(job_fingerprints: list[str]) -> str:
    """Return what makes a sweep the same sweep when re-run: the fingerprints of its jobs, in any order."""
    return digest(sorted(job_fingerprints))[:12]


def _sweep_folder_resolver() -> str:
    """`${actstudy_sweep_folder:}`: `sweep-<fingerprint>` of this command's overrides (launcher aside)."""
    return f"sweep-{sweep_fingerprint(command_overrides(sys.argv[1:]))[:8]}"


def register_resolvers() -> None:
    """Register the folder resolvers that conf/config.yaml names (idempotent).

    The sweep folder is cached: Hydra copies the submitting process's resolver cache into every job's
    config, so a job on a SLURM node (another command line) gets the sweep's folder too.
    """
    OmegaConf.register_new_resolver("actstudy_job_folder", _job_folder_resolver, replace=True)
    OmegaConf.register_new_resolver(
        "actstudy_sweep_folder", _sweep_folder_resolver, replace=True, use_cache=True
    )
