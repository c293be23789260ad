"""Every format beyond Markdown, text, PDF, HTML and .docx ingested with the real embedding model and
searched, the hit's location checked as a citation shows it (the files are built in
tests/unit/test_formats.py, where each is loaded and chunked)."""

from __future__ import annotations

from pathlib import Path

import rag
from tests.conftest import make_settings
from tests.unit.test_formats import (
    RTF,
    deck_bytes,
    epub_bytes,
    mail_bytes,
    notebook_bytes,
    odt_bytes,
    readings_csv,
    workbook_bytes,
)


def test_every_format_is_ingested_and_found_at_its_location(tmp_path, home):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "pumps.ipynb").write_bytes(notebook_bytes())
    (folder / "readings.csv").write_bytes(readings_csv(300))
    (folder / "stock.xlsx").write_bytes(workbook_bytes())
    (folder / "review.pptx").write_bytes(deck_bytes())
    (folder / "handbook.epub").write_bytes(epub_bytes(tmp_path))
    (folder / "visit.odt").write_bytes(odt_bytes())
    (folder / "boiler.rtf").write_bytes(RTF)
    (folder / "harbour.eml").write_bytes(mail_bytes())
    (folder / "AUTHORS").write_text("Maintained by the waterworks night crew, led by Joan Okafor.\n")
    (folder / "settings.json").write_text('{"alarm_threshold_bar": 6.5, "alarm_contact": "control room"}\n')
    (folder / "pump-controller").write_bytes(b"\x7fELF\x02\x01\x01\x00" + bytes(64))
    settings = make_settings(home)
    report = rag.ingest([folder], settings)

    assert report.ok and not report.failed  # the program is skipped with its reason, not failed
    assert dict((Path(path).name, reason) for path, reason in report.skipped)["pump-controller"].startswith(
        "binary content, not text (a file without an extension is read as text)"
    )
    assert len(report.added) == 10
    for query, name, location in [
        ("Where is the spare impeller kept?", "pumps.ipynb", "cell 5, § Pump maintenance > Spare parts"),
        ("Which supplier delivers order PO-9?", "stock.xlsx", "sheet Orders, rows 2-8, § Orders"),
        ("Who mentions the seized bypass valve at Harbour Road?", "review.pptx", "slide 2, § Pump fleet > Notes"),
        ("How is a leaking shaft seal fixed?", "handbook.epub", "§ Repairs > Seals"),
        ("Book the electrician for the float switch", "visit.odt", "§ Site visit > Follow-up"),
        ("When was the boiler descaled?", "boiler.rtf", "§ Boiler log"),
        ("How many relays and breakers are listed in the parts table?", "harbour.eml", "attachment parts.csv"),
        ("Who leads the night crew?", "AUTHORS", "line 1"),
        ("alarm threshold bar", "settings.json", "line 1"),
    ]:
        hits = rag.search(query, settings, k=3, where=None)
        hit = next((hit for hit in hits if Path(hit.source).name == name), None)
        assert hit is not None, (query, [(Path(h.source).name, h.location_label) for h in hits])
        assert hit.location_label.startswith(location), (query, hit.location_label)
    station = rag.search("Town 150 reading", settings, k=10, mode="keyword")
    csv_hit = next(hit for hit in station if Path(hit.source).name == "readings.csv" and "| S150 |" in hit.text)
    assert csv_hit.location["row"] <= 151 <= csv_hit.location["end_row"]


def test_a_suffix_mapped_in_the_loaders_setting_is_ingested_with_that_loader(tmp_path, home):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "pump.notes").write_text("# Pump room\n\n## Keys\n\nThe pump room key hangs behind the boiler door.\n")
    settings = make_settings(home, ingest={"loaders": {".notes": "markdown"}})
    report = rag.ingest([folder], settings)
    assert [Path(path).name for path in report.added] == ["pump.notes"], report.failed
    [hit] = rag.search("Where does the pump room key hang?", settings, k=1)
    assert hit.location_label == "§ Pump room > Keys, line 5"
