"""Batch jobs over the knowledge base: `summarize` and `extract` (see `rag.batch.jobs`), written
resumably by `rag.batch.joblog` in the formats of `rag.batch.output`."""
