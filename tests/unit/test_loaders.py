"""Loaders on bytes as real files have them: other encodings than UTF-8, binary content."""

from __future__ import annotations

import pytest

from ingest.loaders import decode_text, load_plain
from rag.errors import LoadError


# A French note saved by an old Windows editor: Latin-1, not valid UTF-8.
LATIN_1_NOTE = (
    "Réunion du comité de sécurité\n\n"
    "Le système de ventilation sera révisé en février. Les employés doivent être prévenus "
    "à l'avance : l'accès au bâtiment nord sera fermé pendant deux jours, et la cafétéria "
    "déménage provisoirement au rez-de-chaussée.\n"
)


def test_a_latin_1_text_file_is_detected_and_read():
    data = LATIN_1_NOTE.encode("latin-1")
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    assert decode_text(data) == LATIN_1_NOTE
    assert load_plain(data)[0].page_content == LATIN_1_NOTE
    for short in ("Smörgåsbord", "Grüße aus München, die Straße ist schön."):
        assert decode_text(short.encode("latin-1")) == short


@pytest.mark.parametrize(
    ("text", "encoding"),
    [("Привет, мир! Как дела у тебя сегодня?", "cp1251"), ("こんにちは世界、今日はいい天気ですね。", "shift_jis")],
)
def test_other_legacy_encodings_are_not_read_as_western(text, encoding):
    assert decode_text(text.encode(encoding)) == text


def test_utf8_is_read_as_utf8():
    assert decode_text(LATIN_1_NOTE.encode("utf-8")) == LATIN_1_NOTE


def test_binary_content_stays_refused():
    png_header = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10" + bytes(range(256)) * 4
    with pytest.raises(LoadError, match="binary content, not text"):
        decode_text(png_header)
