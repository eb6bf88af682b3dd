# SPDX-License-Identifier: Apache-2.0
"""A tiny LLaMA written on the spot with the `gguf` package: random weights, no download.

2 layers, 64 hidden, 4 heads, context 256, and a SentencePiece-style vocabulary (`llama`
tokenizer: scored pieces with `▁` for a space, and byte fallback for anything else) of
3 control tokens, 256 byte tokens, letter pairs and word pieces (with every prefix of each
piece, so the tokenizer's pairwise merges can reach it). What it generates is noise, but
llama.cpp runs it exactly as it runs a real model: tokenizer, chat template, sampling,
context limits, pooling.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np

SPACE = "\u2581"  # SentencePiece's word-boundary mark
COMMON_WORDS = (
    "the of and to in is was for that on as with by he at from his it an were are which "
    "this be or has had not but first one their its new after who they two her she been "
    "other when there all also into during time more only most would some over such can "
    "may about these up out no him made them many where state then between under year "
    "hello world reply model token words price fee user provider gateway chain stream "
    "request answer sample tiny random noise paid signed receipt settle batch proof"
)
FREQUENT = "etaoinshrdlu"  # their pairs fill the vocabulary to about a thousand pieces
CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}</s>\n"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


@dataclass(frozen=True)
class TinyShape:
    layers: int = 2
    hidden: int = 64
    heads: int = 4
    feed_forward: int = 128
    context: int = 256


def vocabulary() -> tuple[list[str], list[float], list[int]]:
    """Pieces, scores (longer pieces merge first) and token types."""
    pieces = ["<unk>", "<s>", "</s>"]
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL]
    pieces += [f"<0x{b:02X}>" for b in range(256)]
    types += [gguf.TokenType.BYTE] * 256
    normal: list[str] = [SPACE, *(c for c in string.printable.strip())]
    normal += [a + b for a in FREQUENT for b in FREQUENT]
    for word in COMMON_WORDS.split():
        for piece in (SPACE + word, word):
            normal += [piece[:end] for end in range(2, len(piece) + 1)]
    seen: set[str] = set()
    normal = [p for p in normal if not (p in seen or seen.add(p))]  # type: ignore[func-returns-value]
    pieces += normal
    types += [gguf.TokenType.NORMAL] * len(normal)
    scores = [0.0] * (3 + 256) + [float(len(p)) - i * 1e-4 for i, p in enumerate(normal)]
    return pieces, scores, [int(t) for t in types]


def write_tiny_llama(
    path: Path, *, embeddings: bool = False, shape: TinyShape = TinyShape(), seed: int = 7
) -> Path:
    """Writes the model to `path`; `embeddings`: mean pooling, for /v1/embeddings."""
    pieces, scores, types = vocabulary()
    rng = np.random.default_rng(seed)
    head_dim = shape.hidden // shape.heads

    def weights(*dims: int) -> np.ndarray:
        return (rng.standard_normal(dims) * 0.02).astype(np.float32)

    writer = gguf.GGUFWriter(path, "llama")
    writer.add_name("zg-tiny-llama" + ("-embed" if embeddings else ""))
    writer.add_context_length(shape.context)
    writer.add_embedding_length(shape.hidden)
    writer.add_block_count(shape.layers)
    writer.add_feed_forward_length(shape.feed_forward)
    writer.add_head_count(shape.heads)
    writer.add_head_count_kv(shape.heads)
    writer.add_rope_dimension_count(head_dim)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_vocab_size(len(pieces))
    if embeddings:
        writer.add_pooling_type(gguf.PoolingType.MEAN)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(pieces)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_unk_token_id(0)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    writer.add_chat_template(CHAT_TEMPLATE)

    vocab, hidden, ff = len(pieces), shape.hidden, shape.feed_forward
    ones = np.ones(hidden, dtype=np.float32)
    writer.add_tensor("token_embd.weight", weights(vocab, hidden))
    for layer in range(shape.layers):
        block = f"blk.{layer}"
        writer.add_tensor(f"{block}.attn_norm.weight", ones)
        for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
            writer.add_tensor(f"{block}.{name}.weight", weights(hidden, hidden))
        writer.add_tensor(f"{block}.ffn_norm.weight", ones)
        writer.add_tensor(f"{block}.ffn_gate.weight", weights(ff, hidden))
        writer.add_tensor(f"{block}.ffn_up.weight", weights(ff, hidden))
        writer.add_tensor(f"{block}.ffn_down.weight", weights(hidden, ff))
    writer.add_tensor("output_norm.weight", ones)
    writer.add_tensor("output.weight", weights(vocab, hidden))

    path.parent.mkdir(parents=True, exist_ok=True)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
