"""The buyers' ledger of one run: what it reads, and that a reused folder starts empty."""

from __future__ import annotations

from pretix_cluster.loadtest.ledger import TEST_START, LedgerWriter, read_ledger, start_ledger


def test_a_reused_results_folder_starts_the_run_with_an_empty_ledger(tmp_path):
    """Found by re-running with the same --out: the first run's buyers counted as lost."""
    folder = tmp_path / "ledger"
    old = LedgerWriter(folder)
    old.write({"run": "first", "outcome": "completed", "code": "AAAAA", "t0": 1.0})
    old.close()
    (folder / TEST_START).write_text("1.0\n")
    (folder / "notes.txt").write_text("the operator's own file")

    assert start_ledger(folder) == folder
    assert read_ledger(folder) == []
    assert not (folder / TEST_START).exists()
    assert (folder / "notes.txt").read_text() == "the operator's own file"


def test_records_come_back_in_start_order_and_a_torn_line_is_skipped(tmp_path):
    folder = start_ledger(tmp_path / "ledger")
    writer = LedgerWriter(folder)
    writer.write({"run": "r", "t0": 2.0, "code": "B"})
    writer.write({"run": "r", "t0": 1.0, "code": "A"})
    writer.close()
    with writer.path.open("a") as f:
        f.write('{"run": "r", "t0": 3.0, "co')
    assert [r["code"] for r in read_ledger(folder)] == ["A", "B"]
