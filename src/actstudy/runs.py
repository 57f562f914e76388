"""`python -m actstudy.runs {list,repair}`: list sweeps and jobs, or end runs left RUNNING by a dead process
(`actstudy.cli.runs`)."""

import sys

from actstudy.cli.runs import main

if __name__ == "__main__":
    sys.exit(main())
