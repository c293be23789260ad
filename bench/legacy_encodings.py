"""Korean, Chinese and Japanese pages saved in their legacy encodings, read back by the loaders.

    .venv/bin/python bench/legacy_encodings.py

Every Kubernetes tutorial page of the shared cjkdocs folder (Korean, Chinese, Japanese) is encoded
in each legacy encoding of its language that can write it (CP949; GBK, Big5; CP932, EUC-JP) and
decoded by `ingest.loaders.decode_text`, beside the baseline in the same run: charset_normalizer's
best reading alone, with Windows-1252 preferred when it reads the bytes as cleanly (what the
loaders did before they tried the CJK encodings and compared the letters each reading gives).
Prints how many pages each reads back exactly and how many it refuses, then the pages today's
reading still gets wrong. Western pages (the sample notes and realdocs saved as Windows-1252) are
counted too, so that a gain for CJK costs them nothing.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Callable

from charset_normalizer import from_bytes

from ingest.errors import LoadError
from ingest.loaders import PREFERRED_LEGACY_ENCODING, decode_text

REPO = Path(__file__).resolve().parents[1]
TUTORIALS = REPO.parent / "shared" / "data" / "cjkdocs" / "k8s-tutorials"
WESTERN = [REPO / "data" / "sample-notes", REPO.parent / "shared" / "data" / "realdocs"]
ENCODINGS = {"ko": ["cp949"], "zh-cn": ["gbk", "big5"], "ja": ["cp932", "euc_jp"]}


def baseline(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    best = from_bytes(data).best()
    western = from_bytes(data, cp_isolation=[PREFERRED_LEGACY_ENCODING]).best()
    if western is not None and (best is None or western.chaos <= best.chaos):
        return str(western)
    if best is None:
        raise LoadError("no encoding fits")
    return str(best)


def outcome(decode: Callable[[bytes], str], data: bytes, text: str) -> str:
    try:
        return "right" if decode(data) == text else "wrong"
    except LoadError:
        return "refused"


def main() -> None:
    cases = [
        (f"{language}/{page.relative_to(TUTORIALS / language)}", encoding, page.read_text(encoding="utf-8"))
        for language, encodings in ENCODINGS.items()
        for page in sorted((TUTORIALS / language).rglob("*.md"))
        for encoding in encodings
    ]
    cases += [
        (str(page), "cp1252", page.read_text(encoding="utf-8"))
        for folder in WESTERN for page in sorted(folder.rglob("*.md")) if not page.read_text(encoding="utf-8").isascii()
    ]
    readable = []
    for name, encoding, text in cases:
        try:
            readable.append((name, encoding, text.replace("\r\n", "\n"), text.encode(encoding)))
        except UnicodeEncodeError:
            continue  # a letter this encoding cannot write
    print(f"{'pages':<22}{'reader':<10}{'right':>7}{'wrong':>7}{'refused':>9}")
    still_wrong = []
    for group in ("CJK", "Windows-1252"):
        members = [case for case in readable if (case[1] == "cp1252") == (group == "Windows-1252")]
        for reader, decode in (("baseline", baseline), ("today", decode_text)):
            counts = Counter(outcome(decode, data, text) for _, _, text, data in members)
            print(f"{group + f' ({len(members)})':<22}{reader:<10}{counts['right']:>7}{counts['wrong']:>7}{counts['refused']:>9}")
        still_wrong += [f"{name} ({encoding})" for name, encoding, text, data in members if outcome(decode_text, data, text) != "right"]
    print("\nStill not read as written today:", *still_wrong, sep="\n  ")


if __name__ == "__main__":
    main()
