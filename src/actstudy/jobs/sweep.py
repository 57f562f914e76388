"""A Hydra multirun as one MLflow sweep: parent run at the start, report and summary at the end.

`on_multirun_start` validates every job's config (so a typo in one value stops the sweep before any
training), creates the parent run and writes `sweep.json` into the sweep folder, where each job (local
or on a SLURM node sharing the folder) finds the parent run id. `on_multirun_end` builds the comparison
report, ends the parent run, and exits non-zero naming the jobs that failed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from itertools import product
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from hydra import compose
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import HydraException
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from actstudy import metric_names as mn
from actstudy import outcomes
from actstudy.config import identity
from actstudy.config.schema import ConfigError, parse_config
from actstudy.credentials import redact, restore
from actstudy.errors import error_text, one_line_summary
from actstudy.jobs.run_state import FolderLock, RunState, current_owner
from actstudy.paths import CONF_DIR
from actstudy.processes.signals import signals_handled

if TYPE_CHECKING:  # MLflow is imported where a sweep talks to the store, not at the command line
    from mlflow.tracking import MlflowClient

log = logging.getLogger("actstudy")
SWEEP_FILE = "sweep.json"


@dataclass
class SweepInfo:
    """The sweep's id and MLflow parent run, shared with its jobs through `sweep.json`."""

    sweep_id: str
    parent_run_id: str
    tracking_uri: str
    varying_keys: list[str] = field(default_factory=list)  # the keys whose values the sweep varies
    # actstudy.config.identity.sweep_identity of its jobs: a re-run continues only the same sweep
    identity: str = ""
    jobs: list[str] = field(default_factory=list)  # the job folders of this sweep

    @classmethod
    def load(cls, sweep_dir: Path) -> SweepInfo | None:
        """Return the sweep info written at the start of the sweep in `sweep_dir`, or None."""
        try:
            return cls(**json.loads((sweep_dir / SWEEP_FILE).read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def save(self, sweep_dir: Path) -> None:
        """Write `sweep.json` into the sweep folder."""
        sweep_dir.mkdir(parents=True, exist_ok=True)
        (sweep_dir / SWEEP_FILE).write_text(json.dumps(asdict(self), indent=2) + "\n")


def _parsed_overrides(config: DictConfig) -> list[Override]:
    """Return the overrides that Hydra's sweeper expands: `hydra.sweeper.params`, then the command's."""
    params = config.hydra.sweeper.get("params") or {}
    arguments = [f"{k}={v}" for k, v in params.items()] + list(config.hydra.overrides.task)
    loader = GlobalHydra.instance().config_loader() if GlobalHydra.instance().is_initialized() else None
    return OverridesParser.create(config_loader=loader).parse_overrides(arguments)  # loader: for glob()


def _values(config: DictConfig) -> dict[str, tuple[bool, list[str]]]:
    """Return {key: (swept, its `key=value` overrides)}, keys in the order the basic sweeper varies them.

    A key given twice (in the preset's params and on the command line) keeps its first place and takes its
    last values, as in the basic sweeper.
    """
    values: dict[str, tuple[bool, list[str]]] = {}
    for override in _parsed_overrides(config):
        key = override.get_key_element()
        if not override.is_sweep_override():
            values[key] = (False, [f"{key}={override.get_value_element_as_str()}"])
        elif override.is_discrete_sweep():
            values[key] = (True, [f"{key}={value}" for value in override.sweep_string_iterator()])
        else:  # interval(): only other sweepers (Optuna, Nevergrad) sample it; the basic one refuses it too
            raise HydraException(f"{key}: an interval sweep has no list of jobs (use choice() or range())")
    return values


def job_overrides(config: DictConfig) -> list[list[str]]:
    """Return the override list of every job of the sweep, in the basic sweeper's launch order.

    The cartesian product of every key's values (sweeper params included), the first key varying slowest.
    """
    return [list(job) for job in product(*(job_values for _, job_values in _values(config).values()))]


def varying_keys(config: DictConfig) -> list[str]:
    """Return the keys (or groups) that the sweep gives several values."""
    return [key for key, (swept, _) in _values(config).items() if swept]


def check_jobs(config: DictConfig, config_name: str) -> tuple[list[str], list[dict[str, Any]]]:
    """Return one error line per job whose config is invalid, and the resolved config of every valid job."""
    errors, resolved = [], []
    for overrides in job_overrides(config):
        try:
            composed = compose(config_name=config_name, overrides=overrides)
            parse_config(composed)
            # a composed config's root is a mapping with string keys
            resolved.append(cast(dict[str, Any], OmegaConf.to_container(composed, resolve=True)))
        except ConfigError as exc:
            errors.append(f"job [{' '.join(overrides)}]: {exc}")
        except Exception as exc:  # Hydra's own errors (unknown group option, bad override syntax)
            errors.append(f"job [{' '.join(overrides)}]: {str(exc).splitlines()[0]}")
    return errors, resolved


def validate_jobs(config: DictConfig, config_name: str) -> list[str]:
    """Return one error line per job whose config is invalid (empty when all are fine)."""
    return check_jobs(config, config_name)[0]


def owner_tags() -> dict[str, str]:
    """Return the host and pid tags of this process (the one that owns the sweep), for `runs repair`."""
    owner = current_owner()
    return {outcomes.HOST: str(owner["host"]), outcomes.PID: str(owner["pid"])}


def mark_sweep_interrupted(sweep_dir: Path) -> None:
    """End the sweep's parent run as interrupted (the whole multirun was stopped)."""
    from actstudy.tracking import store as tracking

    info = SweepInfo.load(sweep_dir)
    if info is not None:
        client = tracking.open_client(restore(info.tracking_uri))
        tracking.end_run(client, info.parent_run_id, outcomes.INTERRUPTED)


# The sweep folders this process holds, until it exits (module state, not the callback's: Hydra's SLURM
# launcher pickles the callbacks with the submission, and an open file does not pickle).
_SWEEP_LOCKS: dict[Path, FolderLock] = {}


def _hold_sweep_lock(sweep_dir: Path) -> None:
    """Hold `sweep_dir`'s lock for the rest of this process; ConfigError naming the holder if held."""
    key = sweep_dir.resolve()
    if key not in _SWEEP_LOCKS:
        lock = FolderLock(sweep_dir, "sweep")
        lock.acquire(sweep_dir.name)
        _SWEEP_LOCKS[key] = lock


class ReportStopped(BaseException):
    """Ctrl-C or SIGTERM while the end-of-sweep report was written."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def _signals_stop_the_report() -> Iterator[None]:
    """While the report is written, Ctrl-C and SIGTERM raise ReportStopped (whatever handlers training
    left behind), so the parent run is ended truthfully instead of left RUNNING."""

    def stop(signum: int, frame: Any) -> None:
        raise ReportStopped(signum)

    with signals_handled(stop, signal.SIGINT, signal.SIGTERM):
        yield


def job_states(sweep_dir: Path, jobs: list[str]) -> list[RunState]:
    """Return the recorded state of each of the sweep's job folders that has one."""
    states = [RunState.load(sweep_dir / name) for name in jobs]
    return [state for state in states if state is not None]


def table_columns(varying: list[str]) -> dict[str, list[str]]:
    """Return the columns of a sweep's runs table in the MLflow UI: the keys it varies (a config group by
    its `name`), the run's outcome and its summary metrics (`metric_names.SUMMARY_*`)."""
    params = [f"{key}.name" if (CONF_DIR / key).is_dir() else key for key in varying]
    summary = [mn.SUMMARY_TEST_ACC, mn.SUMMARY_LOG10_FIRST_TO_LAST_0, mn.SUMMARY_LOG10_FIRST_TO_LAST_END]
    return {"params": params, "tags": [outcomes.OUTCOME], "metrics": summary}


def deepest_jobs(client: MlflowClient, experiment_id: str, parent_run_id: str, most: int = 10) -> list[str]:
    """Return the run ids of the sweep's jobs at its largest depth (its latest run per job folder), by
    name, at most `most` of them: what the compare view's link opens."""
    from actstudy.report.collect import latest_per_job, search_all

    runs = latest_per_job(search_all(client, experiment_id, f"tags.`{outcomes.PARENT}` = '{parent_run_id}'"))
    depths = {r.info.run_id: int(r.data.params.get("depth", "0") or 0) for r in runs}
    deepest = max(depths.values(), default=0)
    chosen = [r for r in runs if depths[r.info.run_id] == deepest]
    return [r.info.run_id for r in sorted(chosen, key=lambda r: r.info.run_name or "")[:most]]


class SweepCallback(Callback):
    """Hydra callback: one MLflow parent run per multirun, report and failure summary at the end; with
    `dry_run`, only the list of the sweep's jobs (`actstudy.jobs.dry_run`)."""

    def __init__(self, dry_run: bool = False) -> None:
        self.dry_run = dry_run

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Check every job, lock the sweep folder, start (or continue) the parent run. Any failure stops
        the sweep here with one line: Hydra would only warn and run the jobs without a parent."""
        # (store URI, run id) of a parent run started here; strings: launchers pickle the callbacks
        self._parent: tuple[str, str] | None = None
        try:
            self._start(config, **kwargs)
        except Exception as exc:
            log.debug("the sweep could not start", exc_info=True)
            error = one_line_summary(redact(error_text(exc)))
            if self._parent is not None:  # made before the failure: ended, not left RUNNING
                from actstudy.tracking import store as tracking

                uri, run_id = self._parent
                with contextlib.suppress(Exception):
                    client = tracking.open_client(uri)
                    tracking.end_run(client, run_id, outcomes.FAILED, f"the sweep could not start: {error}")
            print(f"actstudy: error: the sweep could not start: {error}; no job was run", file=sys.stderr)
            sys.exit(1)
        self._parent = None

    def _start(self, config: DictConfig, **kwargs: Any) -> None:
        from actstudy.tracking import store as tracking

        config_name = kwargs.get("config_name") or "config"
        errors, resolved = check_jobs(config, config_name)
        if errors:
            for line in errors:
                print(f"actstudy: error: {line}", file=sys.stderr)
            print(f"actstudy: {len(errors)} job(s) have invalid config; nothing was run", file=sys.stderr)
            sys.exit(2)
        if self.dry_run:
            from actstudy.jobs.dry_run import job_lines

            print(
                "\n".join(job_lines(Path(config.hydra.sweep.dir).absolute(), job_overrides(config), resolved))
            )
            sys.exit(0)
        tracking_cfg = config.tracking
        uri = tracking.resolve_uri(tracking_cfg.uri)
        try:
            tracking.check_reachable(uri)
        except tracking.TrackingUnavailable as exc:
            print(f"actstudy: error: {exc}", file=sys.stderr)
            sys.exit(2)
        sweep_dir = Path(config.hydra.sweep.dir)
        try:  # before the parent run: a second copy of the same command must not take it over
            _hold_sweep_lock(sweep_dir)
        except ConfigError as exc:
            print(f"actstudy: error: {exc}", file=sys.stderr)
            sys.exit(2)
        client = tracking.open_client(uri)
        experiment_id = tracking.experiment_id(client, tracking_cfg.experiment)
        previous = SweepInfo.load(sweep_dir)
        this = identity.sweep_identity([identity.job_fingerprint(r) for r in resolved])
        tune = {outcomes.TUNE: ",".join(config.report.tune)}
        if (  # the same sweep, re-run
            previous is not None
            and (previous.tracking_uri, previous.identity) == (redact(uri), this)
            and tracking.run_exists(client, previous.parent_run_id)
        ):
            client.update_run(previous.parent_run_id, status="RUNNING")
            self._parent = (uri, previous.parent_run_id)
            tracking.log_params_and_tags(client, previous.parent_run_id, {}, owner_tags() | tune)
            tracking.delete_tags(client, previous.parent_run_id, [outcomes.OUTCOME, outcomes.ERROR])
            log.info(
                "sweep %s: continuing its MLflow parent run %s", previous.sweep_id, previous.parent_run_id
            )
            return
        sweep_id = f"{sweep_dir.name}-{uuid.uuid4().hex[:4]}"
        task = cast(list[str], OmegaConf.to_container(config.hydra.overrides.task))  # Hydra's: strings
        overrides = " ".join(task)
        tags = {
            # "sweep-<fingerprint>-<4 hex>" for the default folder (was "sweep-sweep-..."), else sweep-<id>
            outcomes.RUN_NAME: sweep_id if sweep_id.startswith("sweep-") else f"sweep-{sweep_id}",
            outcomes.KIND: outcomes.KIND_SWEEP,
            outcomes.SWEEP_ID: sweep_id,
            outcomes.SWEEP_DIR: str(sweep_dir.resolve()),
            outcomes.OVERRIDES: overrides,
            outcomes.LAUNCHER: str(config.hydra.launcher.get("_target_", "")),
            outcomes.GIT_COMMIT: tracking.git_commit(),
            **owner_tags(),
            **tune,
        }
        run = client.create_run(experiment_id, run_name=tags[outcomes.RUN_NAME], tags=tags)
        self._parent = (uri, run.info.run_id)
        jobs = [identity.job_folder(r) for r in resolved]
        SweepInfo(sweep_id, run.info.run_id, redact(uri), varying_keys(config), this, jobs).save(sweep_dir)
        log.info(
            "sweep %s: MLflow parent run %s in experiment '%s' at %s",
            sweep_id,
            run.info.run_id,
            tracking_cfg.experiment,
            redact(uri),
        )

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from actstudy.tracking import store as tracking

        sweep_dir = Path(config.hydra.sweep.dir)
        info = SweepInfo.load(sweep_dir)
        if info is None:
            return
        client = tracking.open_client(restore(info.tracking_uri))
        states = job_states(sweep_dir, info.jobs)
        failed = [s for s in states if s.outcome not in outcomes.SUCCESSFUL]
        counts = Counter(s.outcome or "unknown" for s in states)
        summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
        if os.environ.get("ACTSTUDY_NO_REPORT") != "1":
            try:
                from actstudy.report import write_report

                with _signals_stop_the_report():
                    path = write_report(client, info.parent_run_id, sweep_dir / "report")
                log.info("sweep report: %s", path)
            except ReportStopped as stop:  # the jobs are done and recorded: only the report is missing
                tracking.log_params_and_tags(client, info.parent_run_id, {}, {outcomes.JOBS: summary})
                tracking.end_run(
                    client, info.parent_run_id, outcomes.INTERRUPTED, "stopped during the report"
                )
                print(
                    f"actstudy: sweep {info.sweep_id} stopped during its report (signal {stop.signum}); its "
                    f"jobs are recorded ({summary}); python -m actstudy.report --sweep {info.sweep_id} "
                    "writes the report",
                    file=sys.stderr,
                )
                sys.exit(128 + stop.signum)
            except Exception as exc:  # the sweep's runs are safe in the store; the report can be re-run
                log.exception("building the sweep report failed: %s", exc)
                print(
                    f"actstudy: warning: report failed ({exc}); re-run python -m actstudy.report "
                    f"--sweep {info.sweep_id}",
                    file=sys.stderr,
                )
        tracking.log_params_and_tags(client, info.parent_run_id, {}, {outcomes.JOBS: summary})
        tracking.end_run(
            client,
            info.parent_run_id,
            outcomes.FAILED if failed else outcomes.COMPLETED,
            f"{len(failed)} job(s) failed" if failed else None,
        )
        print(f"actstudy: sweep {info.sweep_id} finished: {summary}", file=sys.stderr)
        try:
            experiment = client.get_run(info.parent_run_id).info.experiment_id
            view = tracking.share_view(
                client,
                experiment,
                f"actstudy-{info.sweep_id}",
                f"tags.`{outcomes.PARENT}` = '{info.parent_run_id}'",
                table_columns(info.varying_keys),
            )
            page = tracking.ui_link(info.tracking_uri, experiment, view=view)
            print(f"actstudy: the sweep's runs in the MLflow UI: {page}", file=sys.stderr)
            deepest = deepest_jobs(client, experiment, info.parent_run_id)
            if len(deepest) > 1:
                compare = tracking.compare_link(info.tracking_uri, experiment, deepest)
                print(f"actstudy: its deepest nets compared: {compare}", file=sys.stderr)
        except Exception as exc:  # only a link: the summary and the exit code matter more
            log.warning("no MLflow UI link for the sweep: %s", exc)
        if failed:
            for s in failed:
                print(f"actstudy: failed job {s.run_name}: {s.outcome}: {s.error}", file=sys.stderr)
            sys.exit(1)
