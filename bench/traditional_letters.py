"""Traditional Chinese letters: the default model asked to write traditional Chinese, as it is and
kept from simplified letters (`rag.backends.writing_in(llm, "zh-Hant")`), in the same run.

    .venv/bin/python bench/traditional_letters.py [--max-tokens 120] [--model NAME]

Each request is a system line asking for traditional Chinese and a question written in it, with no
sources, so that nothing but the model decides its letters. For each, both ways, prints the Han
letters written, those only simplified Chinese writes (这, 设: what the mask is for), those Big5
lacks (what a model kept from its first choice may fall back on) and the seconds; then the totals.
"""

from __future__ import annotations

import argparse
import re
import time

from ingest.scripts import simplified_only
from rag.backends import create_llm, with_generation, writing_in
from rag.settings import load_settings

REQUESTS = [
    "介紹 Kubernetes 的 Pod、Service 和 Deployment。",
    "如何在 Linux 上安裝 Docker？",
    "解釋什麼是開源軟體，並舉三個例子。",
    "說明資料庫索引的作用。",
    "寫一段關於台北天氣的短文。",
    "什麼是負載平衡器？它如何運作？",
]
HAN = re.compile("[\u4e00-\u9fff]")


def outside_big5(letter: str) -> bool:
    try:
        letter.encode("cp950")
    except UnicodeEncodeError:
        return True
    return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-tokens", type=int, default=120)
    parser.add_argument("--model", help="a packaged model instead of the default")
    args = parser.parse_args()
    settings = load_settings(llm={"model": args.model} if args.model else {})
    llm = with_generation(create_llm(settings), max_tokens=args.max_tokens, temperature=0.0)
    started = time.perf_counter()
    kept = writing_in(llm, "zh-Hant")
    print(f"reading the vocabulary for the mask: {time.perf_counter() - started:.2f} s")
    totals = {way: [0.0, 0.0, 0.0, 0.0] for way in ("as it is", "kept")}
    print(f"{'way':<9} {'letters':>7} {'simplified':>10} {'not Big5':>8} {'s':>6}  request")
    for request in REQUESTS:
        prompt = llm.rag_render_chat([{"role": "system", "content": "用繁體中文回答。"}, {"role": "user", "content": request}])
        for way, arguments in (("as it is", {}), ("kept", kept)):
            started = time.perf_counter()
            letters = HAN.findall(llm.invoke(prompt, **arguments))
            row = [len(letters), sum(map(simplified_only, letters)), sum(map(outside_big5, letters)), time.perf_counter() - started]
            totals[way] = [total + value for total, value in zip(totals[way], row)]
            print(f"{way:<9} {row[0]:>7} {row[1]:>10} {row[2]:>8} {row[3]:>6.2f}  {request}")
    for way, (letters, simplified, not_big5, seconds) in totals.items():
        print(f"{way:<9} {letters:>7.0f} {simplified:>10.0f} {not_big5:>8.0f} {seconds:>6.2f}  all")


if __name__ == "__main__":
    main()
