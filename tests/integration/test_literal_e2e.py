"""Hostile CRM values through the CLI: synced exactly, reported literally, exit 0."""

from __future__ import annotations

import pytest
from e2e_support import Env, client_by_vat, edit_csv

pytestmark = pytest.mark.slow

NAME = "[/bold] closing tag \x1b]0;retitled\x07[link=https://evil.example]x[/link]"


def test_markup_and_escape_sequences_in_a_name_are_synced_and_shown_literally(
    synced_env: Env,
) -> None:
    edit_csv(synced_env.crm / "companies.csv", "C001", name=NAME)
    result = synced_env.run("run")
    assert result.returncode == 0, result.stdout + result.stderr
    for shown in ("[/bold]", "\\x1b]0;retitled\\x07[link=https://evil.example]x[/link]"):
        assert shown in result.stdout  # the table wraps the name between words
    assert "\x1b" not in result.stdout
    assert "\x07" not in result.stdout
    assert client_by_vat(synced_env.api, "PL9295973794")["name"] == NAME
