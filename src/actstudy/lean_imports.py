"""Import the training stack without the optional packages it imports for features no job uses.

`import lightning` imports all of torchmetrics (to read its version), whose audio, image and plotting
modules import scipy.signal, torchvision and matplotlib whenever they are installed; MLflow imports
scipy.sparse for model signatures. A job uses none of that: without them the training stack imported in
7.3 s instead of 10.5 s (medians of 3 on this project's 2-core machine; docs/benchmarks.md).

While `import_training_stack` runs, those packages look absent: a finder first on `sys.meta_path` (the
import system's public hook) raises ModuleNotFoundError for their modules and PackageNotFoundError for
their distributions, the two ways libraries test for an optional package. Afterwards they import as
usual: actstudy imports torchvision (downloads) and matplotlib (figures) when it uses them. The libraries
keep what they saw: torchmetrics without its audio and image metrics or `Metric.plot`, MLflow without
scipy sparse signatures.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.metadata
import sys
from collections.abc import Iterator

#: Optional packages the training stack would import for features no job uses.
DEFERRED = ("scipy", "matplotlib", "torchvision")
#: What a job imports: the libraries that import the packages above.
TRAINING_STACK = ("torch", "lightning", "torchmetrics", "mlflow.tracking")


class _Deferred(importlib.abc.MetaPathFinder):
    """Makes the DEFERRED packages look not installed."""

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> None:
        if _hidden(fullname.partition(".")[0]):
            raise ModuleNotFoundError(f"No module named {fullname!r} (deferred)", name=fullname)

    def find_distributions(
        self, context: importlib.metadata.DistributionFinder.Context | None = None
    ) -> Iterator[importlib.metadata.Distribution]:
        name = getattr(context, "name", None)
        if name and _hidden(name.lower().replace("-", "_")):
            raise importlib.metadata.PackageNotFoundError(name)
        return iter(())


def _hidden(package: str) -> bool:
    """A deferred package is hidden unless something imported it already (then hiding its submodules
    would break what imported it)."""
    return package in DEFERRED and package not in sys.modules


def import_training_stack() -> None:
    """Import TRAINING_STACK with the DEFERRED packages hidden; returns nothing. A no-op once it is all
    imported (a sweep's later jobs)."""
    if all(name in sys.modules for name in TRAINING_STACK):
        return
    finder = _Deferred()
    sys.meta_path.insert(0, finder)
    try:
        for name in TRAINING_STACK:
            importlib.import_module(name)
    finally:
        sys.meta_path.remove(finder)
