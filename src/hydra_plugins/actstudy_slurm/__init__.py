"""actstudy's Hydra plugins: the SLURM launcher (`conf/hydra/launcher/slurm.yaml`)."""
