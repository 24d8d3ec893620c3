"""`python -m experiments.budget_report`: renders issue 19's evidence (see
`experiments.reports.budget`) into docs/budget_aware.md, budget_aware.png and
budget_aware_bias.png."""

import sys

from experiments.reports.budget import main

if __name__ == "__main__":
    sys.exit(main())
