"""`python -m actstudy.runs repair`: end runs left RUNNING by a dead process (`actstudy.jobs.repair`)."""

import sys

from actstudy.jobs.repair import main

if __name__ == "__main__":
    sys.exit(main())
