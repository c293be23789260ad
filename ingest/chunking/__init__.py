"""Chunking: loaded documents cut into chunks that fit the embedding model's window.

- `chunker.py`: the chunker (`Chunker`, `Chunk`), which imports the Markdown and text parsers;
- `lines.py`: which lines of a chunk body are its file's own (read by rag.evidence);
- `metadata.py`: the metadata a stored chunk carries (read by the index).

This file imports nothing: importing `ingest.chunking.lines` or `ingest.chunking.metadata` runs it
first, and the index and rag.evidence read those two without loading the chunker and its parsers.
"""
