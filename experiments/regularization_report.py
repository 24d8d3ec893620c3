"""`python -m experiments.regularization_report`: renders issue 38's evidence (see
`experiments.reports.regularization`) into docs/regularization.md and docs/regularization.png."""

import sys

from experiments.reports.regularization import main

if __name__ == "__main__":
    sys.exit(main())
