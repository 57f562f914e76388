"""Tag names, outcome values and the outcome -> MLflow status mapping: the one home of these facts.

The train, sweep, report and `runs` commands all read and write runs through these names. Import-light
(no MLflow) so that the command line can use it before heavy imports.
"""

from __future__ import annotations

# What a run ended as (tag OUTCOME). A run that MLflow shows FINISHED may have diverged.
COMPLETED = "completed"
DIVERGED = "diverged"
INTERRUPTED = "interrupted"  # Ctrl-C, SIGTERM, preemption, a killed process: resumable
FAILED = "failed"  # an error: the message is in tag ERROR

STATUS = {COMPLETED: "FINISHED", DIVERGED: "FINISHED", INTERRUPTED: "KILLED", FAILED: "FAILED"}
SUCCESSFUL = (COMPLETED, DIVERGED)  # a job that needs no re-run
RESUMABLE = (None, INTERRUPTED, FAILED)  # None: the process died without recording an outcome

# Tags (MLflow's own first).
PARENT = "mlflow.parentRunId"
RUN_NAME = "mlflow.runName"
KIND = "actstudy.kind"  # KIND_JOB or KIND_SWEEP
KIND_JOB = "job"
KIND_SWEEP = "sweep"
OUTCOME = "actstudy.outcome"
ERROR = "actstudy.error"
DIVERGED_STEP = "actstudy.diverged_step"
CHECKPOINT = "actstudy.checkpoint"
SWEEP_ID = "actstudy.sweep_id"
SWEEP_DIR = "actstudy.sweep_dir"
OVERRIDES = "actstudy.overrides"
OUTPUT_DIR = "actstudy.output_dir"
# on a job run that a later attempt of the same job began anew (it died before its first checkpoint, or
# resume=false): that run's id. Reports keep one row per job folder, its latest run.
SUPERSEDED_BY = "actstudy.superseded_by"
LAUNCHER = "actstudy.launcher"
JOBS = "actstudy.jobs"  # on a sweep's parent: the count of its jobs' outcomes
TUNE = "actstudy.tune"  # on a sweep's parent: the keys its report picks per setting (comma-separated)
CLAIM = "actstudy.claim."  # on a sweep's parent, + a claim's key: its verdict (actstudy.report.claims)
HOST = "actstudy.host"  # host and pid of rank 0 of the process that writes the run (for `runs repair`)
PID = "actstudy.pid"
WORLD_SIZE = "actstudy.world_size"  # processes that trained the run (DDP)
GIT_COMMIT = "git.commit"
THREADS_USED = "trainer.threads_used"  # what `trainer.threads` resolved to in this attempt
SLURM_JOB_ID = "slurm.job_id"  # the SLURM job (its array's id for an array task)
SLURM_ARRAY_JOB_ID = "slurm.array_job_id"
SLURM_ARRAY_TASK_ID = "slurm.array_task_id"
# On the experiment: the UI's experiment kind (mlflow/server/js: `mlflow.experimentKind`, values
# `custom_model_development`, `genai_development`, and `*_inferred` / `no_inferred_type` that the UI writes
# itself when it guesses).
EXPERIMENT_KIND = "mlflow.experimentKind"
MODEL_TRAINING = "custom_model_development"
FINGERPRINT = "actstudy.fingerprint"  # the job's config fingerprint (actstudy.config.identity)


def status_of(outcome: str) -> str:
    """Return the MLflow run status (FINISHED, KILLED, FAILED) that an outcome ends a run with."""
    return STATUS.get(outcome, "FAILED")
