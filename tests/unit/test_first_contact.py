"""What a newcomer meets first: the example configuration says what is true, the sandbox
greets once, and ``flowtly-sync --help`` starts without the heavy libraries."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from sync.config import load_settings
from sync.errors import ConfigError
from sync.model import SCHEMAS, EntityKind
from sync.normalize import NormalizationError, normalize_value
from sync.wiring import build_crm

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config.example.toml"
HEAVY = ("httpx", "sqlalchemy", "rich", "pydantic", "structlog", "uvicorn", "starlette")


def _comment_lines(text: str) -> list[tuple[str | None, str]]:
    """Each line with the (commented or not) table header it falls under."""
    table: str | None = None
    found = []
    for line in text.splitlines():
        header = re.match(r"^#?\s*\[([^\]]+)\]", line)
        if header:
            table = header.group(1)
        found.append((table, line))
    return found


def test_the_example_does_not_claim_every_key_is_optional() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    head = text.split("\n\n", 1)[0]
    assert "Every key is optional" not in head
    assert "[crm] path" in head
    path_comment = text[: text.index('path = "examples/crm"')].splitlines()[-1]
    assert "Required" in path_comment


def test_the_files_connector_does_require_its_path(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[crm]\ntype = "files"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        build_crm(load_settings(config))
    assert caught.value.key == "crm.path"


def test_translated_country_names_are_cited_only_under_a_mapping_entry() -> None:
    lines = _comment_lines(EXAMPLE.read_text(encoding="utf-8"))
    cited = [(table, line) for table, line in lines if re.search("Deutschland|Pologne", line)]
    assert cited
    for table, line in cited:
        assert str(table).startswith("mapping."), line
    entry = "\n".join(line for table, line in lines if table == cited[0][0])
    assert "only through" in entry
    quality = next(line for table, line in lines if line.startswith("country = "))
    assert "English names" in quality


def test_what_the_example_says_of_country_names_holds() -> None:
    spec = SCHEMAS[EntityKind.CLIENT]["country"]
    assert normalize_value(spec, "Poland") == "PL"
    assert normalize_value(spec, "DEU") == "DE"
    with pytest.raises(NormalizationError):
        normalize_value(spec, "Deutschland")
    from sync.mapping.compile import FieldMap

    through_mapping = FieldMap.build(spec, {})
    assert through_mapping.read("Deutschland") == "DE"
    assert through_mapping.read("Pologne") == "PL"


def test_the_sandbox_prints_its_banner_once(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "sync", "sandbox", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=tmp_path,
    )
    assert proc.stdout is not None
    watchdog = threading.Timer(60, proc.kill)
    watchdog.start()
    try:
        first = proc.stdout.readline()
        assert first.startswith("Flowtly sandbox serving at http://127.0.0.1:")
        proc.send_signal(signal.SIGTERM)
        rest = proc.stdout.read()
        proc.wait()
    finally:
        watchdog.cancel()
        proc.stdout.close()
    assert "serving at" not in rest


def test_importing_the_cli_loads_no_heavy_library() -> None:
    probe = (
        "import json, sys; import sync.cli; "
        f"print(json.dumps(sorted(m for m in {list(HEAVY)!r} if m in sys.modules)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert json.loads(done.stdout) == []


def test_help_loads_no_heavy_library() -> None:
    probe = (
        "import json, sys\n"
        "from sync.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        f"print(json.dumps(sorted(m for m in {list(HEAVY)!r} if m in sys.modules)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert json.loads(done.stdout.splitlines()[-1]) == []
    assert "usage: flowtly-sync" in done.stdout


def test_the_cli_offers_every_report_format() -> None:
    from sync.cli import OUTPUT_FORMATS
    from sync.report.render import OutputFormat

    assert tuple(f.value for f in OutputFormat) == OUTPUT_FORMATS
