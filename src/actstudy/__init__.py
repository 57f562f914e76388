"""actstudy: measure why deep sigmoid/tanh networks train badly and ReLU networks don't.

The package map, lowest layer first (a package imports only from packages above it in this list, and
`training`, `monitor`, `data` and `models` never import `tracking` or `report`: tests/unit/test_layers.py):

- `errors`, `paths`, `metric_names`, `outcomes`, `credentials`, `logs`: the shared vocabulary (errors,
  folders, metric keys, outcome and tag names, passwords redacted from URIs, the two loggers);
  import-light.
- `models/`: the networks and their inits (config checks its names against their lists).
- `config/`: what a job is, checked before anything runs (schema, typed checks, overrides, identity).
- `processes/`: how a job's processes are placed, started and stopped (World, rendezvous, threads, the
  stop protocol, SLURM).
- `data/`: the datasets and the tensor-resident loader.
- `monitor/`: per-layer measurement (gradient flow, activations, histograms, sharpness).
- `training/`: Lightning: the Trainer, the LightningModule, fit and test of one job.
- `tracking/`: the MLflow record (store, the retrying client, metrics writer, system metrics).
- `report/`: everything drawn or written for people: the sweep report, claims, figures.
- `jobs/`: a job's and a sweep's life on the process that owns the record (resume, run, end, sweep,
  `repair` of runs a dead process left RUNNING).
- `cli/`: how processes start (`python -m actstudy.train`, the ranks rank 0 starts); `__main__`
  dispatches `python -m actstudy {train,report,repair}`.
"""

__version__ = "0.1.0"
