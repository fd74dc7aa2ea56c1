"""The text report of ``flowtly-sync run`` as a terminal shows it: the first run's creates
counted per entity, later updates listed in full, every line within the terminal's width."""

from __future__ import annotations

from pathlib import Path

from e2e_support import edit_csv, run_cli, small_crm_config


def test_the_first_run_is_summarised_and_fits_the_terminal(tmp_path: Path) -> None:
    config = small_crm_config(tmp_path, f"sandbox://{tmp_path / 'flowtly.db'}")
    first = run_cli("run", config=config, env={"COLUMNS": "72"})
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert "5 client record(s) created in flowtly" in lines
    assert "10 contact record(s) created in flowtly" in lines
    assert len(lines) <= 12, first.stdout
    assert max(map(len, lines)) <= 72

    edit_csv(tmp_path / "crm" / "companies.csv", "C001", city="Kraków-Podgórze")
    second = run_cli("run", config=config, env={"COLUMNS": "100"})
    assert second.returncode == 0, second.stderr
    assert "C001" in second.stdout
    assert "Kraków-Podgórze" in second.stdout
    assert max(map(len, second.stdout.splitlines())) <= 100
