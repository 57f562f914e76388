"""Registers what `conf/config.yaml` names but `conf/` does not hold, whenever Hydra starts.

Hydra calls every search-path plugin before it composes a config, in any process and through any entry
point (`python -m actstudy.train`, `hydra.compose` in tests and scripts, a SLURM job), so nothing has to
be imported for its side effects first.
"""

from __future__ import annotations

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin


class ActstudyConfig(SearchPathPlugin):
    """Stores `actstudy_defaults` (every key's default, from `actstudy.config.schema`) and the folder
    resolvers."""

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        from hydra.core.config_store import ConfigStore

        from actstudy.config import identity
        from actstudy.config import schema as config

        ConfigStore.instance().store(name="actstudy_defaults", node=config.defaults())
        identity.register_resolvers()
