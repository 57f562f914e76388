"""The life of a job and of a sweep on the process that owns the record: one job across its processes
(`runner`), its MLflow run, resume decision and end (`job`), the job folder's state file and lock
(`run_state`), the sweep's parent run and checks (`sweep`, Hydra's callback), and `repair` of runs
a dead process left RUNNING.
"""
