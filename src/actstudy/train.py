"""`python -m actstudy.train`: the training command (`actstudy.cli.train`) under the name the README, the
SLURM launchers' configs and the tests use."""

from actstudy.cli.train import cli, main  # noqa: F401  (main: Hydra's task function)

if __name__ == "__main__":
    cli()
