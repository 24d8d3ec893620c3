"""Turns benchmark records into the paper's Table 1 (Markdown) and Figure 1 (PNG).

    python -m experiments.report results/ [--out DIR]

Reads `results/records.jsonl` (or a .jsonl file given directly) and writes `table1.md`,
`figure1.png` (best validation loss against gradient steps) and `figure1_wallclock.png` (the
same against wall-clock seconds) into `--out` (default: the results directory), with
`experiments.reports.table1`.

Beside them: `table2.md` from the ablation's records (`results/ablation/*.jsonl`, written by
`python -m experiments.ablation`) and `table3_4.md` from the sensitivity's
(`results/sensitivity/*.jsonl`, `python -m experiments.sensitivity`), when those exist.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

from experiments import ablation, sensitivity
from experiments.core.records import RECORDS_FILE
from experiments.methods.variants import read_experiment
from experiments.reports.table1 import latest_records, records_path, write_figure, write_table


def write_experiment_tables(results, out=None) -> list:
    """Table 2 and Tables 3-4 from the ablation and sensitivity records beside `results`
    (`<dir>/ablation/*.jsonl`, `<dir>/sensitivity/*.jsonl`), written into `out` (default the
    results directory); returns the paths written."""
    results = pathlib.Path(results)
    directory = results if results.is_dir() else results.parent
    out = pathlib.Path(out) if out is not None else directory
    written = []
    for name, writer, file_name in (("ablation", ablation.write_table2, "table2.md"),
                                    ("sensitivity", sensitivity.write_table3_4, "table3_4.md")):
        records = read_experiment(directory / name)
        if records:
            out.mkdir(parents=True, exist_ok=True)
            writer(records, out / file_name)
            written.append(out / file_name)
    for path in written:
        print(f"wrote {path}")
    return written


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.report",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=pathlib.Path,
                        help=f"results directory (holding {RECORDS_FILE}) or a .jsonl file")
    parser.add_argument("--out", type=pathlib.Path, default=None,
                        help="where table1.md and the figures go (default: the results dir)")
    args = parser.parse_args(argv)
    if write_experiment_tables(args.results, args.out) and not records_path(
        args.results
    ).is_file():
        return 0  # the ablation or the sensitivity ran, the benchmark (Table 1) not yet
    source = records_path(args.results)
    if not source.is_file():
        parser.error(f"results must be a directory holding {RECORDS_FILE} or a .jsonl file; "
                     f"{str(source)!r} does not exist")
    records = latest_records(source)
    if not records:
        parser.error(f"{str(source)!r} holds no records: run python -m experiments.benchmark")
    out = args.out or (args.results if args.results.is_dir() else args.results.parent)
    out.mkdir(parents=True, exist_ok=True)
    write_table(records, out / "table1.md")
    write_figure(records, out / "figure1.png")
    write_figure(records, out / "figure1_wallclock.png", axis="seconds")
    print(f"wrote {out / 'table1.md'}, {out / 'figure1.png'} and "
          f"{out / 'figure1_wallclock.png'} from {len(records)} records")
    return 0


if __name__ == "__main__":
    sys.exit(main())
