"""A rank other than 0 of a multi-process job: wait for rank 0's plan, then only train.

Started by rank 0 as `python -m actstudy.cli.worker` (the job's resolved config in the environment), or, under
SLURM, reached from the Hydra job on every task whose rank is not 0. It never reads or writes the job's
state file or MLflow run: rank 0 records everything, including this rank's error, which it reports
through the rendezvous before exiting.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from actstudy import outcomes
from actstudy.config.schema import RunConfig, parse_config
from actstudy.processes import distributed
from actstudy.processes.distributed import Rendezvous, World

log = logging.getLogger("actstudy")


def run_worker(cfg: RunConfig, resolved: dict[str, Any], world: World) -> int:
    """Train this rank of the job as rank 0's plan says; return the process exit code (0, 1, or 130)."""
    from actstudy.data import load_splits
    from actstudy.training import trainer as training

    distributed.share_threads(world, cfg.trainer.threads)
    rendezvous = Rendezvous.open(world)
    try:
        plan = rendezvous.wait_for_plan()
        if plan.get("abort"):
            log.info("rank %d: rank 0 stopped before training (%s)", world.rank, plan["abort"])
            return 0
        if plan["config_digest"] != distributed.config_digest(resolved):
            raise RuntimeError("this rank composed a different config than rank 0; check the job's command")
        splits = load_splits(cfg.data)
        world = world.join(rendezvous, cfg.trainer.accelerator, cfg.trainer.ddp_timeout_s)
        resume_from = Path(plan["resume_from"]) if plan["resume_from"] else None
        result = training.train(cfg, splits, Path(plan["checkpoint_dir"]), resume_from, None, world)
    except (KeyboardInterrupt, SystemExit):
        return 130
    except BaseException as exc:
        log.exception("rank %d failed", world.rank)
        rendezvous.report_error(exc)
        return 1
    finally:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
    return 130 if result.outcome == outcomes.INTERRUPTED else 0


def main() -> int:
    """Entry point of a rank that rank 0 started: the config comes from the environment."""
    logging.basicConfig(
        level=logging.INFO, format=f"[rank {os.environ.get('RANK')}] %(levelname)s %(message)s"
    )
    resolved = json.loads(os.environ[distributed.CONFIG_ENV])
    cfg = parse_config(resolved)
    return run_worker(cfg, resolved, distributed.world_of(cfg))


if __name__ == "__main__":
    sys.exit(main())
