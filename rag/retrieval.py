"""Retrieval only: rank stored chunks for a query, by meaning, by words, or both (hybrid).

Hybrid search takes the best candidates of each (Chroma's nearest vectors, SQLite FTS5's BM25),
fuses them (min-max weighted fusion or reciprocal rank fusion, each retriever weighed by how well
its ranking separates its best candidates) and, optionally, diversifies the result with maximal
marginal relevance. Every hit keeps its cosine similarity to the query, so
"is this relevant at all?" has one scale whatever the mode.

Other wordings of the query (search queries the model wrote, rag.query_generation) are each
searched the same way; their rankings are fused with the query's own, which weighs the most.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator, Literal, get_args

from ingest.chunking.metadata import shown_heading
from ingest.index import CHUNK_METADATA_KEYS, ChunkFilter, Index, StoredChunk
from ingest.scripts import AUTO_MODEL, CJK_RUN, HANGUL, columns, one_line
from ingest.text import fold
from rag.languages import DEFAULT, texts
from rag.errors import UsageError
from rag.settings import SearchSettings, Settings

if TYPE_CHECKING:
    import numpy as np

    from ingest.embedding.embedders import Embedder

SNIPPET_COLUMNS = 240
# With MMR, the k results are chosen among this many times k of the best candidates.
MMR_POOL_FACTOR = 4
_BACKGROUND = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rag-keyword-search")
_OPEN: dict[tuple, Index] = {}
_EMBEDDERS: dict[tuple, "Embedder"] = {}
# Of the metadata a chunk carries, what says where in its file it is (the rest is about the file, or the chunk's order).
LOCATION_KEYS = tuple(
    key for key in CHUNK_METADATA_KEYS if key not in ("source", "subject", "sender", "date", "chunk_index")
)
Mode = Literal["dense", "keyword", "hybrid"]
# How well a ranking separates is judged on its best candidates, as many as a reader looks at.
SEPARATION_TOP = 10
# A file's chunks holding the words looked for in its opening: enough to reach the first chunk
# however it ranks among them.
OPENING_MATCHES = 1000


def location_of(metadata: dict[str, Any]) -> dict[str, Any]:
    """Where in its file a chunk is: page, heading, lines (those the format has)."""
    return {key: metadata[key] for key in LOCATION_KEYS if key in metadata}


def location_label(location: dict[str, Any], *, in_prompt: bool = False, language: str = DEFAULT) -> str:
    """'page 2, § Heading, lines 3-9'; 'line 12'; 'message 3, attachment a.pdf, page 1'; 'sheet Sales, rows 2-40';
    in `language`'s words ('2쪽, § 제목, 3-9줄').

    `in_prompt`: as the answer prompt labels its sources, in English whatever the language, with a
    single line as a range too ('lines 12-12') and the headings as the index holds them, anchors
    and all; elsewhere a heading is shown without them (`shown_heading`). Every QA set was measured
    with that prompt, and leaving the lines or the headings' anchors out of it cost right answers.
    """
    words = texts(DEFAULT if in_prompt else language).location

    def span(singular: str, plural: str, first: Any, last: Any, single_as_range: bool = False) -> str:
        if first == last and not single_as_range:
            return words[singular].format(first=first)
        return words[plural].format(first=first, last=last)

    parts = [words[key].format(first=location[key]) for key in ("message", "attachment", "page", "slide", "sheet") if key in location]
    for key, plural in (("row", "rows"), ("cell", "cells")):
        if key in location:
            parts.append(span(key, plural, location[key], location.get(f"end_{key}", location[key])))
    if "heading" in location:
        parts.append(f"§ {location['heading'] if in_prompt else shown_heading(location['heading'])}")
    if "start_line" in location:
        parts.append(span("line", "lines", location["start_line"], location["end_line"], single_as_range=in_prompt))
    return words["separator"].join(parts)


def chunk_body(text: str, location: dict[str, Any]) -> str:
    """The chunk text without the heading path that was prefixed for embedding."""
    heading = location.get("heading")
    if heading and text.startswith(heading):
        return text[len(heading) :].lstrip("\n")
    return text


@dataclass
class Candidate:
    """One chunk as each retriever saw it, and what fusion made of it."""

    chunk_id: str
    dense_rank: int | None = None
    dense_score: float | None = None  # cosine similarity
    keyword_rank: int | None = None
    keyword_score: float | None = None  # BM25
    fused_score: float = 0.0
    dropped_by: str | None = None  # "fusion" or "mmr" for candidates left out
    # The score over the query and its other wordings, when there were any: it ranks the chunk then.
    queries_score: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            key: (round(value, 4) if isinstance(value, float) else value)
            for key, value in self.__dict__.items()
            if key != "queries_score" or value is not None
        }


@dataclass
class SearchHit:
    rank: int
    score: float  # the mode's ranking score: cosine (dense), BM25 (keyword) or fused (hybrid)
    source: str
    text: str
    chunk_id: str
    location: dict[str, Any] = field(default_factory=dict)
    similarity: float | None = None  # cosine similarity to the query; None in keyword mode
    explain: Candidate | None = None

    @property
    def location_label(self) -> str:
        return location_label(self.location)

    @property
    def body(self) -> str:
        return chunk_body(self.text, self.location)

    def snippet(self, width: int = SNIPPET_COLUMNS) -> str:
        """The body on one line, cut to `width` terminal columns (a CJK letter takes two) after a
        word; Chinese and Japanese, written without spaces, after any letter."""
        flat = one_line(self.body)
        if columns(flat) <= width:
            return flat
        kept, used = 0, 1  # the ellipsis's column
        for char in flat:
            used += columns(char)
            if used > width:
                break
            kept += 1
        cut = flat[:kept]
        at_letter = CJK_RUN.fullmatch(flat[kept - 1 : kept + 1]) and not HANGUL.match(flat[kept])
        return (cut if at_letter else cut.rsplit(" ", 1)[0]) + "…"

    def to_dict(self, explain: bool = False) -> dict[str, Any]:
        result = {
            "rank": self.rank,
            "score": round(self.score, 4),
            "similarity": None if self.similarity is None else round(self.similarity, 4),
            "source": self.source,
            "location": self.location,
            "chunk_id": self.chunk_id,
            "text": self.body,
        }
        if explain and self.explain is not None:
            result["explain"] = self.explain.to_dict()
        return result


@dataclass
class SearchResult:
    """The hits, best first (iterate it like a list), and what fusion or MMR left out."""

    hits: list[SearchHit]
    dropped: list[Candidate]  # candidates a retriever ranked in its top k that the result left out
    mode: Mode
    queries: list[str] = field(default_factory=list)  # the other wordings searched besides the query

    def __iter__(self) -> Iterator[SearchHit]:
        return iter(self.hits)

    def __len__(self) -> int:
        return len(self.hits)

    def __getitem__(self, position: int) -> SearchHit:
        return self.hits[position]


def fuse(
    dense: list[tuple[str, float]], keyword: list[tuple[str, float]], settings: SearchSettings
) -> dict[str, Candidate]:
    """Candidates from both retrievers with their fused score (higher is better)."""
    candidates: dict[str, Candidate] = {}
    for rank, (chunk_id, score) in enumerate(dense, start=1):
        candidates[chunk_id] = Candidate(chunk_id, dense_rank=rank, dense_score=score)
    for rank, (chunk_id, score) in enumerate(keyword, start=1):
        candidate = candidates.setdefault(chunk_id, Candidate(chunk_id))
        candidate.keyword_rank, candidate.keyword_score = rank, score
    dense_norm = _min_max(dict(dense))
    keyword_norm = _min_max(dict(keyword))
    # Each ranking counts as much as it separates: on SciFact the median query's dense and keyword
    # rankings separate 0.39 and 0.47, all-MiniLM-L6-v2's ranking of Chinese or Korean chunks (it
    # reads little of either) 0.04 to 0.08, so its ties no longer outvote the keyword matches.
    dense_weight = settings.dense_weight * separation(dense_norm)
    keyword_weight = (1 - settings.dense_weight) * separation(keyword_norm)
    if settings.fusion == "rrf":
        for c in candidates.values():
            c.fused_score = sum(
                w / (settings.rrf_k + rank)
                for w, rank in ((dense_weight, c.dense_rank), (keyword_weight, c.keyword_rank))
                if rank is not None
            )
        return candidates
    for c in candidates.values():
        c.fused_score = dense_weight * dense_norm.get(c.chunk_id, 0.0) + keyword_weight * keyword_norm.get(c.chunk_id, 0.0)
    return candidates


def fuse_queries(rankings: list[dict[str, Candidate]], mode: Mode, settings: SearchSettings) -> dict[str, float]:
    """One score per chunk from the rankings of the query (first) and its other wordings, by the
    same fusion as the retrievers': the query weighs 1, each other wording `settings.query_weight`."""
    fused: dict[str, float] = {}
    for position, candidates in enumerate(rankings):
        weight = 1.0 if position == 0 else settings.query_weight
        all_scores = {chunk_id: _ranking_score(candidate, mode) for chunk_id, candidate in candidates.items()}
        scores = {chunk_id: score for chunk_id, score in all_scores.items() if score > float("-inf")}
        ranked = sorted(scores, key=scores.__getitem__, reverse=True)
        if settings.fusion == "rrf":
            contributions = {chunk_id: weight / (settings.rrf_k + rank) for rank, chunk_id in enumerate(ranked, start=1)}
        else:
            contributions = {chunk_id: weight * value for chunk_id, value in _min_max(scores).items()}
        for chunk_id, contribution in contributions.items():
            fused[chunk_id] = fused.get(chunk_id, 0.0) + contribution
    return fused


def separation(normalized: dict[str, float]) -> float:
    """How far, on average, a ranking's best candidates sit below its first, as a share of the
    range of all its candidates' scores (`normalized` by `_min_max`, best first): 0 when they all
    tie, near 1 when one stands out. Places in the top the retriever left empty count as its lowest.
    """
    top = list(normalized.values())[:SEPARATION_TOP]
    return 1 - sum(top) / SEPARATION_TOP


def _min_max(scores: dict[str, float]) -> dict[str, float]:
    if not scores:
        return {}
    low, high = min(scores.values()), max(scores.values())
    span = high - low
    return {key: (value - low) / span if span else 1.0 for key, value in scores.items()}


def mmr_select(
    query: "np.ndarray", ranked: list[str], vectors: dict[str, "np.ndarray"], k: int, diversity: float
) -> list[str]:
    """Maximal marginal relevance: relevant to the query, unlike what is already chosen."""
    import numpy as np

    chosen: list[str] = []
    remaining = list(ranked)
    while remaining and len(chosen) < k:
        def value(chunk_id: str) -> float:
            relevance = float(np.dot(vectors[chunk_id], query))
            redundancy = max((float(np.dot(vectors[chunk_id], vectors[c])) for c in chosen), default=0.0)
            return (1 - diversity) * relevance - diversity * redundancy

        best = max(remaining, key=value)
        chosen.append(best)
        remaining.remove(best)
    return chosen


def check_search_options(k: Any, mode: Any) -> None:
    """Refuse a `k` or a `mode` a search cannot take, in words (a caller of the Python API gets no
    type check: `k=0` would otherwise mean the default, a mode's typo a KeyError)."""
    if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
        raise UsageError(f"k is how many chunks to return, a whole number of at least 1; got {k!r}.")
    if mode is not None and mode not in get_args(Mode):
        raise UsageError(f"mode is one of {', '.join(get_args(Mode))}; got {mode!r}.")


def search(
    query: str,
    settings: Settings,
    k: int | None = None,
    *,
    mode: Mode | None = None,
    where: dict[str, Any] | None = None,
    paths: list[str] | None = None,
    mmr: bool | None = None,
    generated: list[str] | None = None,
) -> SearchResult:
    """The `k` chunks that best match `query`, with what each retriever thought of them.

    `where` keeps chunks whose metadata has these values; `paths` keeps sources matching any of
    these glob patterns. `generated`: other wordings of the query, each searched too (fused).
    """
    if not query.strip():
        raise UsageError("The query is empty: give some words to search for.")
    check_search_options(k, mode)
    if isinstance(paths, str):  # one pattern, as rag.ingest takes one path
        paths = [paths]
    options = settings.search
    mode = mode or options.mode
    k = k or options.k
    use_mmr = options.mmr if mmr is None else mmr
    index = open_index(settings)
    index.require()
    index.check_fingerprint()
    chunk_filter = ChunkFilter(dict(where or {}), index.matching_sources(paths) if paths else None)
    generated = list(generated or [])
    if chunk_filter.impossible:
        return SearchResult([], [], mode, generated)

    pool = max(k, options.candidates)
    texts = [query, *generated]
    # The keyword searches run while the queries are embedded and Chroma searched: both wait in C.
    keyword_searches = (
        [_BACKGROUND.submit(index.keyword_query, text, pool, chunk_filter.keyword_sources()) for text in texts]
        if mode != "dense"
        else []
    )
    vectors = _embed_queries(texts, settings, index) if mode != "keyword" else None
    rankings = []
    for position in range(len(texts)):
        dense = index.query(vectors[position], pool, chunk_filter) if vectors is not None else []
        if dense:  # only what the manifest lists: an ingest writing right now is invisible until it commits
            listed = index.listed([chunk_id for chunk_id, _ in dense])
            dense = [(chunk_id, score) for chunk_id, score in dense if chunk_id in listed]
        keyword = keyword_searches[position].result() if keyword_searches else []
        rankings.append(fuse(dense, keyword, options))
    vector = vectors[0] if vectors is not None else None
    candidates = rankings[0]  # the query's own: what each retriever thought of a chunk, as --explain shows
    if generated:
        for chunk_id, score in fuse_queries(rankings, mode, options).items():
            candidates.setdefault(chunk_id, Candidate(chunk_id)).queries_score = score
    ranked = sorted(candidates, key=lambda chunk_id: _ranking_score(candidates[chunk_id], mode), reverse=True)

    # Text, metadata and vectors are read for as few chunks as the filters and MMR allow.
    mmr_query = vector if use_mmr else None
    needed = len(ranked) if not chunk_filter.empty else MMR_POOL_FACTOR * k if mmr_query is not None else k
    stored = index.get_chunks(ranked[:needed], vectors=mmr_query is not None)
    # An id a concurrent ingest deleted since it was ranked is simply no longer there.
    ranked = [c for c in ranked[:needed] if c in stored and chunk_filter.accepts(stored[c].metadata)]
    if mmr_query is not None:
        pool_vectors = {c: embedding for c in ranked[: MMR_POOL_FACTOR * k] if (embedding := stored[c].embedding) is not None}
        selected = mmr_select(mmr_query, list(pool_vectors), pool_vectors, k, options.mmr_diversity)
    else:
        selected = ranked[:k]
    if vector is not None:  # keyword-only hits still get their similarity to the query
        unscored = [c for c in selected if candidates[c].dense_score is None and stored[c].embedding is None]
        for chunk_id, embedding in index.get_vectors(unscored).items():
            stored[chunk_id].embedding = embedding
    hits = [_hit(rank, candidates[c], stored[c], vector, mode) for rank, c in enumerate(selected, start=1)]
    return SearchResult(hits, _dropped(candidates, set(selected), k, "mmr" if mmr_query is not None else "fusion"), mode, generated)


def _ranking_score(candidate: Candidate, mode: Mode) -> float:
    if candidate.queries_score is not None:
        return candidate.queries_score
    score = {"hybrid": candidate.fused_score, "dense": candidate.dense_score, "keyword": candidate.keyword_score}[mode]
    return float("-inf") if score is None else score


def _dropped(candidates: dict[str, Candidate], selected: set[str], k: int, by: str) -> list[Candidate]:
    """Chunks one retriever ranked in its own top k that the final result left out."""
    dropped = []
    for chunk_id, candidate in candidates.items():
        in_a_top_k = any(rank is not None and rank <= k for rank in (candidate.dense_rank, candidate.keyword_rank))
        if in_a_top_k and chunk_id not in selected:
            candidate.dropped_by = by
            dropped.append(candidate)
    return dropped


def open_index(settings: Settings) -> Index:
    """One open index per knowledge base and process: a search then costs no connection set-up.

    A rebuild (here or in another process) makes a new collection; then the index is reopened.
    """
    key = (settings.index_path, settings.collection, settings.model_dump_json(include={"embedding", "chunking", "vector_store", "index"}))
    index = _OPEN.get(key)
    if index is None or index.rebuilt_since_opened():
        index = _OPEN[key] = Index(settings)
    return index


def mentioned_anywhere(name: str, settings: Settings, k: int = 5) -> bool:
    """Whether some chunk of the knowledge base spells `name` (case and width folded): one keyword
    query, then the best matches' text."""
    return any(fold(name) in fold(chunk.text) for chunk in _keyword_matches(name, settings, k))


def opening_names(source: str, terms: list[str], settings: Settings) -> bool:
    """Whether the first chunk of `source` (its page's title and opening) spells every one of
    `terms` (case and width folded): one keyword query within the file, then its matches' text."""
    return any(
        chunk.metadata.get("chunk_index") == 0 and all(fold(term) in fold(chunk.text) for term in terms)
        for chunk in _keyword_matches(" ".join(terms), settings, OPENING_MATCHES, [source])
    )


def _keyword_matches(query: str, settings: Settings, k: int, sources: list[str] | None = None) -> list[StoredChunk]:
    """The stored chunks of the `k` best keyword matches of `query` (within `sources` if given)."""
    index = open_index(settings)
    return list(index.get_chunks([chunk_id for chunk_id, _ in index.keyword_query(query, k, sources)]).values())


def embedding_model(settings: Settings) -> str:
    """The embedding model of the collection: the one it was made with when embedding.model is "auto"."""
    return open_index(settings).embedding_model if settings.embedding.model == AUTO_MODEL else settings.embedding.model


def embedder(settings: Settings) -> "Embedder":
    """The collection's embedding model, loaded once per process."""
    from ingest.embedding.embedders import load_embeddings

    embedding = settings.embedding.model_copy(update={"model": embedding_model(settings)})
    key = (settings.cache_path, embedding.model_dump_json())
    if key not in _EMBEDDERS:
        _EMBEDDERS[key] = load_embeddings(embedding, settings.cache_path)
    return _EMBEDDERS[key]


def embed_texts(texts: list[str], settings: Settings) -> "np.ndarray":
    """Unit vectors of `texts` by the knowledge base's embedding model (loaded once per process)."""
    return embedder(settings).encode(texts)


def _embed_queries(queries: list[str], settings: Settings, index: Index) -> "np.ndarray":
    vectors = embedder(settings).encode(queries)
    index.check_dimension(len(vectors[0]))
    return vectors


def _hit(rank: int, candidate: Candidate, chunk: StoredChunk, vector: "np.ndarray | None", mode: Mode) -> SearchHit:
    import numpy as np

    similarity = candidate.dense_score
    if similarity is None and vector is not None and chunk.embedding is not None:
        similarity = float(np.dot(chunk.embedding, vector))
    return SearchHit(
        rank=rank,
        score=_ranking_score(candidate, mode) if mode != "dense" or candidate.queries_score is not None else float(similarity or 0.0),
        source=chunk.metadata.get("source", ""),
        text=chunk.text,
        chunk_id=chunk.id,
        location=location_of(chunk.metadata),
        similarity=similarity,
        explain=candidate,
    )
