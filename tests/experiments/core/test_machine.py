"""A record says what it ran on, including TensorFlow's thread counts: the intra-op count
changes the numerics, so two records are comparable bit for bit only at the same count."""

from experiments.core.records import machine


def test_a_record_names_the_thread_counts_the_run_was_given(monkeypatch):
    monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", "1")
    monkeypatch.setenv("TF_NUM_INTEROP_THREADS", "3")
    assert machine()["tf_threads"] == {"intra_op": 1, "inter_op": 3}


def test_without_settings_the_record_says_tensorflows_default(monkeypatch):
    monkeypatch.delenv("TF_NUM_INTRAOP_THREADS", raising=False)
    monkeypatch.delenv("TF_NUM_INTEROP_THREADS", raising=False)
    assert machine()["tf_threads"] == {"intra_op": 0, "inter_op": 0}
