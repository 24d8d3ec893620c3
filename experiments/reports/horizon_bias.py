"""The short-horizon bias probes (`experiments.horizon_bias`) as a section of
docs/regularization.md: at each probe, the settings ranked by their plain validation loss, by
the loss of a copy cooled down for each branch length, and by the improvement rate between the
rungs' own-step probes, each against the order of the full single runs at their end. A
fitness whose order at a probe matches the end order would select the setting that finishes
better; where none does, no remedy of that kind is supported by these runs."""

from __future__ import annotations

__all__ = ["probe_rows", "probe_section"]

SETTING_NAMES = {"none": "none", "good": "good guess", "bad": "bad guess"}


def _order(losses: dict) -> list:
    return sorted(losses.items(), key=lambda item: item[1])


def _text(order) -> str:
    return " < ".join(f"{name} {loss:.3f}" for name, loss in order)


def _seeds(probes, singles):
    """(seed, {setting name: probe record}, end order) for each seed probed in at least two
    settings that all have a full run; the end order is the full runs' last curve point,
    their best validation loss."""
    by_seed = {}
    for record in probes:
        by_seed.setdefault(record["seed"], {})[SETTING_NAMES[record["setting"]]] = record
    for seed in sorted(by_seed):
        runs = by_seed[seed]
        if len(runs) >= 2 and all(seed in singles.get(name, {}) for name in runs):
            yield seed, runs, _order({name: singles[name][seed]["curve"][-1][1]
                                      for name in runs})


def probe_rows(probes, singles) -> list:
    """Per (seed, probe step): the orders {"plain", "cooled B"..., "end"} of the settings.

    `probes`: the `probe-*` records; `singles`: {setting name: {seed: adam-decay record}} of
    the full runs."""
    rows = []
    for seed, runs, end in _seeds(probes, singles):
        steps = sorted(set.intersection(*[{p["steps"] for p in r["probes"]}
                                          for r in runs.values()]))
        for step in steps:
            at = {name: next(p for p in r["probes"] if p["steps"] == step)
                  for name, r in runs.items()}
            orders = {"plain": _order({name: p["loss"] for name, p in at.items()})}
            for branch in next(iter(at.values()))["cooled"]:
                orders[f"cooled {branch}"] = _order(
                    {name: p["cooled"][branch] for name, p in at.items()})
            rows.append({"seed": seed, "steps": step, "orders": orders, "end": end})
    return rows


def _improvement_rows(probes, singles, first, second) -> list:
    """Per seed: the settings ordered by loss fallen per step between the two probes (the
    fastest improver first, shown as the negated rate), with the end order."""
    rows = []
    for seed, runs, end in _seeds(probes, singles):
        losses = {name: {p["steps"]: p["loss"] for p in r["probes"]} for name, r in runs.items()}
        if all(first in points and second in points for points in losses.values()):
            rates = {name: -(points[first] - points[second]) / (second - first)
                     for name, points in losses.items()}
            rows.append((seed, _order(rates), end))
    return rows


def probe_section(probes, singles) -> list:
    """Markdown lines of the section, or [] without probes of at least two settings."""
    rows = probe_rows(probes, singles)
    if not rows:
        return []
    budget = f"{probes[0]['member_steps']:,} member-steps"
    kinds = list(rows[0]["orders"])
    horizons = probes[0]["rung_horizons"]
    own = [h[1] for h in horizons]
    lines = ["", f"### Scoring after a cool-down branch ({budget}): does any order at the "
             "rungs name the end's winner?",
             "", "Rendered from `experiments.horizon_bias` (one model per setting and seed, "
             "trained as `adam-decay` over the same budget up to the last probe; at each probe "
             "a copy with its Adam state trains B more steps, its rate falling to 0, and is "
             "measured on the whole validation half). Probes: each rung's own steps per member "
             f"({', '.join(f'{s:,}' for s in own)}) and its member-steps read as a single run's "
             f"steps ({', '.join(f'{h[0]:,}' for h in horizons)}). The end: the full runs' best "
             "validation loss.", "",
             "| seed | probe (steps) | " + " | ".join(kinds) + " | at the end |",
             "|---|---|" + "---|" * len(kinds) + "---|"]
    for row in rows:
        lines.append(f"| {row['seed']} | {row['steps']:,} | "
                     + " | ".join(_text(row["orders"][k]) for k in kinds)
                     + f" | {_text(row['end'])} |")
    lines += ["", "Probes whose order names the end's winner first:", ""]
    for kind in kinds:
        matches = sum(row["orders"][kind][0][0] == row["end"][0][0] for row in rows)
        lines.append(f"- {kind}: {matches} of {len(rows)}")
    if len(own) >= 2:
        improvement = _improvement_rows(probes, singles, own[0], own[1])
        if improvement:
            matches = sum(order[0][0] == end[0][0] for _, order, end in improvement)
            lines.append(f"- improvement rate between {own[0]:,} and {own[1]:,} steps (loss "
                         f"fallen per step, fastest first): {matches} of {len(improvement)} "
                         "seeds (" + "; ".join(
                             f"{seed}: " + " > ".join(f"{name} {-rate:.2e}"
                                                      for name, rate in order)
                             for seed, order, _ in improvement) + ")")
    return lines
