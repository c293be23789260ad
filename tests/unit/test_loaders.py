"""Loaders on bytes as real files have them: other encodings than UTF-8, binary content."""

from __future__ import annotations

import base64

import pytest

from ingest.loaders import decode_text, load_eml, load_plain
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


# Spreadsheets saved as CSV by Excel on Korean, Chinese and Japanese Windows.
LEGACY_CJK_CSV = [
    ("이름,부서,내선번호\n김민준,개발팀,2301\n이서연,영업팀,2417\n박지훈,인사팀,2120\n", "cp949"),
    ("姓名,部门,分机号\n王伟,研发部,2301\n李娜,销售部,2417\n张敏,人事部,2120\n", "gbk"),
    ("姓名,部門,分機號\n王偉,研發部,2301\n李娜,銷售部,2417\n張敏,人事部,2120\n", "big5"),
    ("氏名,部署,内線番号\n佐藤健,開発部,2301\n鈴木花子,営業部,2417\n高橋誠,人事部,2120\n", "cp932"),
]


@pytest.mark.parametrize(("text", "encoding"), LEGACY_CJK_CSV)
def test_a_csv_in_a_korean_chinese_or_japanese_legacy_encoding_is_read_in_it(text, encoding):
    # Shift JIS bytes also decode cleanly as Korean, into syllables nobody writes (뜴뱻뙍).
    assert decode_text(text.encode(encoding)) == text


def test_utf8_is_read_as_utf8():
    assert decode_text(LATIN_1_NOTE.encode("utf-8")) == LATIN_1_NOTE


def test_binary_content_stays_refused():
    png_header = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10" + bytes(range(256)) * 4
    with pytest.raises(LoadError, match="binary content, not text"):
        decode_text(png_header)


def mail(body: bytes, charset: str | None, subject: str = "=?ks_c_5601-1987?B?" + base64.b64encode("똠방 워크숍".encode("cp949")).decode() + "?=") -> bytes:
    content_type = f"text/plain; charset={charset}" if charset else "text/plain"
    head = f"From: a@example.com\r\nSubject: {subject}\r\nMIME-Version: 1.0\r\nContent-Type: {content_type}\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    return head.encode() + base64.encodebytes(body)


@pytest.mark.parametrize(("text", "charset", "encoding"), [
    # Outlook labels Korean mail ks_c_5601-1987 and writes CP949 (똠 is not in KS X 1001).
    ("똠방 프로젝트 워크숍은 판교 7동 301호에서 합니다.", "ks_c_5601-1987", "cp949"),
    ("똠방 프로젝트 워크숍은 판교 7동 301호에서 합니다.", "euc-kr", "cp949"),
    # Chinese mail in GBK labelled gb2312 (喆 is GBK's, not GB 2312's).
    ("部门聚餐改在张喆家附近的川菜馆，地址是建国路88号。", "gb2312", "gbk"),
    ("①本社三階会議室、㈱山田製作所です。", "shift_jis", "cp932"),
    # No charset, or a wrong one: read as a text file is, or as the UTF-8 it is.
    ("백업 서버의 IP 주소는 10.20.30.40 입니다.", None, "utf-8"),
    ("백업 서버의 IP 주소는 10.20.30.40 입니다.", "us-ascii", "utf-8"),
])
def test_a_mail_in_a_cjk_charset_is_read_by_the_superset_mail_clients_read_it_by(text, charset, encoding):
    [document] = load_eml(mail(f"{text}\n".encode(encoding), charset))
    heading, _, body = document.page_content.partition("\n\n")
    assert body == text and heading.startswith("똠방 워크숍 (from a@example.com")


def test_an_iso_2022_jp_mail_keeps_the_nec_letters_japanese_mailers_write_in_it():
    text = "会場は①本社三階会議室、㈱山田製作所です。"
    # As NEC's and Microsoft's mailers write them: JIS X 0208's escape for letters only JIS X 0213 has.
    body = f"{text}\n".encode("iso2022_jp_2004").replace(b"\x1b$(Q", b"\x1b$B")
    [document] = load_eml(mail(body, "iso-2022-jp"))
    assert document.page_content.partition("\n\n")[2] == text

