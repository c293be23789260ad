"""Write the traditional Chinese QA set from the simplified Chinese one.

No shared document is written in traditional Chinese, so `bench/answers.py` reads the Chinese
Kubernetes tutorials through OpenCC's conversion to Taiwan's forms and phrases ("s2twp") for its
`zh-Hant` set, and this script writes that set's questions and answers the same way:
  k8s-tutorials-zh-cn-qa.jsonl  ->  k8s-tutorials-zh-tw-qa.jsonl   (ids zh01 -> tw01)

Run with:  python data/build_traditional_chinese_qa.py   (needs the bench extra's opencc)
"""

from __future__ import annotations

import json
from pathlib import Path

import opencc

HERE = Path(__file__).resolve().parent
SIMPLIFIED = HERE / "k8s-tutorials-zh-cn-qa.jsonl"
TRADITIONAL = HERE / "k8s-tutorials-zh-tw-qa.jsonl"
CONVERSION = "s2twp"


def main() -> None:
    converter = opencc.OpenCC(CONVERSION)
    rows = []
    for line in SIMPLIFIED.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        row["id"] = row["id"].replace("zh", "tw", 1)
        row["question"] = converter.convert(row["question"])
        row["answers"] = [converter.convert(answer) for answer in row["answers"]]
        rows.append(json.dumps(row, ensure_ascii=False))
    TRADITIONAL.write_text("\n".join(rows) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
