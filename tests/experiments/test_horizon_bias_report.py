"""The probes' section of the regularization page: each order is by the loss it names, the
end order comes from the full runs, and a kind is credited only where it names the end's
winner first."""

from experiments.reports.horizon_bias import probe_rows, probe_section


def probe(seed, setting, plain, cooled):
    return {"method": f"probe-{setting}", "seed": seed, "setting": setting, "scale": "middle",
            "member_steps": 12800, "rung_horizons": [[640, 128], [2688, 1152]],
            "probes": [{"steps": 128, "loss": plain[0], "cooled": {"32": cooled[0]}},
                       {"steps": 1152, "loss": plain[1], "cooled": {"32": cooled[1]}}]}


def singles(none_end, good_end):
    return {"none": {5: {"curve": [[640, 0.4, 1.0], [12800, none_end, 9.0]]}},
            "good guess": {5: {"curve": [[640, 0.5, 1.0], [12800, good_end, 9.0]]}}}


def test_a_cooled_order_that_names_the_end_winner_is_credited_and_the_plain_one_is_not():
    # none leads plainly at both probes; cooled, the good guess leads at the second; the
    # good guess finishes better.
    probes = [probe(5, "none", (0.50, 0.30), (0.45, 0.28)),
              probe(5, "good", (0.60, 0.34), (0.55, 0.26))]
    rows = probe_rows(probes, singles(0.25, 0.23))
    assert [row["steps"] for row in rows] == [128, 1152]
    assert [name for name, _ in rows[1]["orders"]["cooled 32"]] == ["good guess", "none"]
    assert [name for name, _ in rows[1]["end"]] == ["good guess", "none"]
    text = "\n".join(probe_section(probes, singles(0.25, 0.23)))
    assert "- plain: 0 of 2" in text
    assert "- cooled 32: 1 of 2" in text
    # loss fallen per step from 128 to 1,152: none 0.20, good guess 0.26: the good guess
    # improves faster, and it is the end's winner.
    assert "improvement rate between 128 and 1,152 steps" in text and "1 of 1 seeds" in text


def test_without_probes_of_two_settings_there_is_no_section():
    assert probe_section([probe(5, "none", (0.5, 0.3), (0.4, 0.2))], singles(0.2, 0.3)) == []
