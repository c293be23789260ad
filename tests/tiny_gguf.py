"""A tiny, random-weight llama GGUF model for tests.

Real models are hundreds of MB and slow to load; tests that only need "a GGUF
that llama.cpp loads, tokenizes with, and generates from" can use this instead.
The file is about 225 KB, loads in milliseconds and generates gibberish.

Design choices, all driven by what llama.cpp needs or what tests want:

* Tokenizer: SentencePiece-style ("llama") with the 256 byte-fallback tokens
  <0x00>..<0xFF>, so *any* UTF-8 text tokenizes (unknown characters fall back
  to bytes instead of <unk>). Printable ASCII characters and some common
  English pieces are real tokens so that prompts are not 1 token per byte.
* Output is steered: the model can only ever emit printable-ASCII pieces,
  never control tokens (so no EOS: generation always runs to max_tokens) and
  never raw byte tokens (so streamed text never contains half a UTF-8
  character). That makes outputs non-empty and stream chunks well-formed.
* Deterministic: weights come from numpy's seeded PCG64 generator and the
  writer emits keys and tensors in insertion order, so the same arguments
  always give the same bytes.

Usage:
    path = write_tiny_llama_gguf(tmp_path / "tiny.gguf", chat_template="...")
    python tests/tiny_gguf.py /tmp/tiny.gguf   # by hand
"""

from __future__ import annotations

import os
import string
import sys
from pathlib import Path

import numpy as np

# Model shape: small enough to be a few hundred KB in F32, big enough that
# llama.cpp runs its ordinary code paths (multi-head attention, head_dim 16).
N_EMBD = 32
N_HEAD = 2
N_HEAD_KV = 2
N_LAYER = 2
N_FF = 64
CONTEXT_LENGTH = 4096
VOCAB_SIZE = 512

UNK_ID, BOS_ID, EOS_ID = 0, 1, 2

# LLaMA 2's chat template, as a Jinja chat template in GGUF metadata writes it; it renders a
# system and a user message exactly as prompts/llama2.toml does.
LLAMA2_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ '[INST] <<SYS>>\\n' + message['content'] + '\\n<</SYS>>\\n\\n' }}"
    "{% elif message['role'] == 'user' %}{% if loop.index0 == 0 %}{{ '[INST] ' }}{% endif %}"
    "{{ message['content'] + ' [/INST]' }}"
    "{% else %}{{ ' ' + message['content'] + ' </s>' }}{% endif %}{% endfor %}"
)
SPACE = "\u2581"  # SentencePiece's stand-in for a space ("▁").

# Extra pieces so typical English prompts take ~1.5 characters per token
# instead of ~1.1; that keeps RAG-sized prompts inside a small n_ctx. Common
# letter pairs/triples, then "▁x" word starts, then whole words with all their
# prefixes (the SentencePiece merger only joins two existing pieces at a time,
# so "▁the" is reachable only through "▁t" and "▁th").
_COMMON_PIECES = (
    "th he in er an re on at en nd ti es or te of ed is it al ar st to nt ng se "
    "ha as ou io le ve co me de hi ri ro ic ne ea ra ce li ch ll be ma si om ur "
    "ion ing ent tion the and ver ter for ate con pro res com per"
).split() + [SPACE + c for c in "tasciwobpmfdrhlnegu"]
_COMMON_WORDS = (
    "the and of to in is that it for on with as are was be this by you not or "
    "from at have an can if all use what question answer context"
).split()


def _vocab() -> tuple[list[str], list[float], list[int]]:
    """Tokens, scores and token types of the SentencePiece-style vocabulary."""
    from gguf import TokenType

    tokens = ["<unk>", "<s>", "</s>"]
    types = [TokenType.UNKNOWN, TokenType.CONTROL, TokenType.CONTROL]
    # llama.cpp looks byte tokens up by exactly this spelling when a piece is
    # missing from the vocabulary (byte fallback) and when decoding them.
    for b in range(256):
        tokens.append(f"<0x{b:02X}>")
        types.append(TokenType.BYTE)

    pieces: list[str] = [SPACE]
    pieces += [c for c in string.printable if c.isprintable() and c != " "]
    pieces += _COMMON_PIECES
    for word in _COMMON_WORDS:
        word = SPACE + word
        pieces += [word[:i] for i in range(2, len(word) + 1)]
    seen = set(tokens)
    for piece in pieces:
        if piece not in seen:
            seen.add(piece)
            tokens.append(piece)
            types.append(TokenType.NORMAL)
    assert len(tokens) <= VOCAB_SIZE, "piece lists outgrew VOCAB_SIZE"
    # Fill up to VOCAB_SIZE so the tensor shapes do not depend on the word lists.
    while len(tokens) < VOCAB_SIZE:
        tokens.append(f"<unused{len(tokens)}>")
        types.append(TokenType.UNUSED)

    # The SentencePiece merger prefers higher scores; longer pieces score
    # higher so whole words win over their fragments.
    scores = [0.0] * len(tokens)
    for i, (tok, typ) in enumerate(zip(tokens, types)):
        if typ == TokenType.NORMAL:
            scores[i] = float(len(tok)) - i / 10_000
    return tokens, scores, [int(t) for t in types]


def _weights(rng: np.random.Generator, types: list[int]) -> dict[str, np.ndarray]:
    """Random F32 tensors, shaped as GGUF stores them (numpy shape = ggml ne reversed)."""
    from gguf import TokenType

    def linear(n_out: int, n_in: int) -> np.ndarray:
        return (rng.standard_normal((n_out, n_in)) / np.sqrt(n_in)).astype(np.float32)

    head_dim = N_EMBD // N_HEAD
    t: dict[str, np.ndarray] = {}

    # Dimension 0 of the residual stream is a constant "bias" channel: every
    # embedding has the same positive value there and no layer writes to it,
    # so after the final RMS norm it is always clearly positive. The output
    # matrix can then push tokens down by a fixed amount regardless of input.
    embd = rng.standard_normal((VOCAB_SIZE, N_EMBD)).astype(np.float32)
    embd[:, 0] = 4.0
    t["token_embd.weight"] = embd

    for i in range(N_LAYER):
        p = f"blk.{i}."
        t[p + "attn_norm.weight"] = np.ones(N_EMBD, dtype=np.float32)
        t[p + "attn_q.weight"] = linear(N_HEAD * head_dim, N_EMBD)
        t[p + "attn_k.weight"] = linear(N_HEAD_KV * head_dim, N_EMBD)
        t[p + "attn_v.weight"] = linear(N_HEAD_KV * head_dim, N_EMBD)
        attn_out = linear(N_EMBD, N_HEAD * head_dim)
        attn_out[0, :] = 0.0  # keep the bias channel untouched
        t[p + "attn_output.weight"] = attn_out
        t[p + "ffn_norm.weight"] = np.ones(N_EMBD, dtype=np.float32)
        t[p + "ffn_gate.weight"] = linear(N_FF, N_EMBD)
        t[p + "ffn_up.weight"] = linear(N_FF, N_EMBD)
        ffn_down = linear(N_EMBD, N_FF)
        ffn_down[0, :] = 0.0  # keep the bias channel untouched
        t[p + "ffn_down.weight"] = ffn_down

    t["output_norm.weight"] = np.ones(N_EMBD, dtype=np.float32)
    output = rng.standard_normal((VOCAB_SIZE, N_EMBD)).astype(np.float32)
    # Only printable pieces may win: everything else (control, byte, unused
    # tokens) gets a large negative weight on the always-positive bias channel.
    output[:, 0] = np.where(np.asarray(types) == int(TokenType.NORMAL), 0.0, -30.0)
    t["output.weight"] = output
    return t


def write_tiny_llama_gguf(
    path: str | os.PathLike[str],
    *,
    name: str = "Tiny Llama Test",
    chat_template: str | None = None,
    seed: int = 0,
) -> Path:
    """Write a tiny random llama GGUF to `path` and return it as a Path.

    `name` becomes general.name; `chat_template`, when given, becomes
    tokenizer.chat_template (llama-cpp-python then formats chats with it).
    The same arguments always produce byte-identical files.
    """
    # Imported here so that merely importing this module (e.g. from conftest)
    # does not fail where the test-only `gguf` package is missing.
    import gguf

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tokens, scores, types = _vocab()
    tensors = _weights(np.random.default_rng(seed), types)

    w = gguf.GGUFWriter(path, "llama")
    w.add_name(name)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    w.add_context_length(CONTEXT_LENGTH)
    w.add_embedding_length(N_EMBD)
    w.add_block_count(N_LAYER)
    w.add_feed_forward_length(N_FF)
    w.add_head_count(N_HEAD)
    w.add_head_count_kv(N_HEAD_KV)
    w.add_rope_dimension_count(N_EMBD // N_HEAD)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(VOCAB_SIZE)

    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_unk_token_id(UNK_ID)
    w.add_bos_token_id(BOS_ID)
    w.add_eos_token_id(EOS_ID)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    if chat_template is not None:
        w.add_chat_template(chat_template)

    for tensor_name, data in tensors.items():
        w.add_tensor(tensor_name, data)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} OUTPUT.gguf")
    out = write_tiny_llama_gguf(sys.argv[1])
    print(f"wrote {out} ({out.stat().st_size} bytes)")
