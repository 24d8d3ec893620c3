"""`python -m experiments.width_report`: renders issue 29's evidence (see
`experiments.reports.width`) into docs/width.md and docs/width.png."""

import sys

from experiments.reports.width import main

if __name__ == "__main__":
    sys.exit(main())
