"""Deterministic tiny llama-architecture GGUF models with random weights, for the local stack and tests."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import string
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np

# Bump when the generator's output changes, so cached files are regenerated.
GENERATOR_VERSION = 1

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

_SPACE = "\u2581"  # SentencePiece's word-boundary marker
_CONTROL = ("<s>", "</s>", "<|im_start|>", "<|im_end|>")
_WORD_TEXT = (
    "the of and to in is that for it as was with be by on not he this are or his from at which but have an "
    "they you were her she there one all we their been has who will more if no out so said what up its about "
    "than into them can only other new some could time these two may then do first any my now such like our "
    "over me even most made after also did many before must through back where much your way well down "
    "should because each just people how too little good very make world still own see work long get here "
    "hello model token request route cost fast answer question please thank"
)
_SUFFIXES = ("ing", "ed", "er", "ly", "es", "tion", "ment", "ness", "able", "est")


@dataclass(frozen=True)
class TinyModelSpec:
    """Shape and identity of a generated model; the defaults load in well under a second."""

    name: str = "tiny-llama"
    n_layers: int = 2
    n_embd: int = 64
    n_head: int = 4
    n_ff: int = 128
    context_length: int = 4096
    seed: int = 0


def _prefixes(piece: str) -> list[str]:
    """All prefixes of length >= 2, so SPM's pairwise merges can reach the whole piece."""
    return [piece[:i] for i in range(2, len(piece) + 1)]


def build_vocab() -> tuple[list[str], list[float], list[int]]:
    """SPM-style vocabulary: unk, control tokens, 256 byte-fallback tokens, characters and word pieces."""
    tokens: dict[str, tuple[float, int]] = {"<unk>": (0.0, gguf.TokenType.UNKNOWN)}
    tokens.update((t, (0.0, gguf.TokenType.CONTROL)) for t in _CONTROL)
    tokens.update((f"<0x{b:02X}>", (0.0, gguf.TokenType.BYTE)) for b in range(256))
    pieces = [_SPACE, *string.ascii_letters, *string.digits, *string.punctuation]
    for word in _WORD_TEXT.split():
        pieces += _prefixes(_SPACE + word)
    for suffix in _SUFFIXES:
        pieces += _prefixes(suffix)
    for piece in pieces:
        tokens.setdefault(piece, (float(len(piece)), gguf.TokenType.NORMAL))
    return list(tokens), [s for s, _ in tokens.values()], [int(t) for _, t in tokens.values()]


def _add_metadata(writer: gguf.GGUFWriter, spec: TinyModelSpec, vocab: list[str]) -> None:
    """Write architecture hyperparameters and tokenizer metadata."""
    writer.add_name(spec.name)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    writer.add_context_length(spec.context_length)
    writer.add_embedding_length(spec.n_embd)
    writer.add_block_count(spec.n_layers)
    writer.add_feed_forward_length(spec.n_ff)
    writer.add_head_count(spec.n_head)
    writer.add_head_count_kv(spec.n_head)
    writer.add_rope_dimension_count(spec.n_embd // spec.n_head)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(len(vocab))
    writer.add_tokenizer_model("llama")
    writer.add_bos_token_id(vocab.index("<s>"))
    writer.add_eos_token_id(vocab.index("</s>"))
    writer.add_unk_token_id(vocab.index("<unk>"))
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    writer.add_add_space_prefix(True)
    writer.add_chat_template(CHATML_TEMPLATE)


def _tensors(spec: TinyModelSpec, n_vocab: int) -> list[tuple[str, np.ndarray]]:
    """Random weights in llama tensor layout (numpy shapes are ggml's dimensions reversed)."""
    rng = np.random.default_rng(spec.seed)

    def matrix(rows: int, cols: int) -> np.ndarray:
        return (rng.standard_normal((rows, cols), dtype=np.float32) * 0.02).astype(np.float16)

    def norm() -> np.ndarray:
        return np.ones(spec.n_embd, dtype=np.float32)

    e, f = spec.n_embd, spec.n_ff
    out = [("token_embd.weight", matrix(n_vocab, e))]
    for i in range(spec.n_layers):
        blk = f"blk.{i}"
        out += [
            (f"{blk}.attn_norm.weight", norm()),
            (f"{blk}.attn_q.weight", matrix(e, e)),
            (f"{blk}.attn_k.weight", matrix(e, e)),
            (f"{blk}.attn_v.weight", matrix(e, e)),
            (f"{blk}.attn_output.weight", matrix(e, e)),
            (f"{blk}.ffn_norm.weight", norm()),
            (f"{blk}.ffn_gate.weight", matrix(f, e)),
            (f"{blk}.ffn_up.weight", matrix(f, e)),
            (f"{blk}.ffn_down.weight", matrix(e, f)),
        ]
    return [*out, ("output_norm.weight", norm()), ("output.weight", matrix(n_vocab, e))]


def generate_tiny_model(path: Path, spec: TinyModelSpec = TinyModelSpec()) -> Path:
    """Write the model for ``spec`` to ``path``; the same spec always gives byte-identical files."""
    if spec.n_embd % spec.n_head:
        raise ValueError(f"n_embd={spec.n_embd} is not divisible by n_head={spec.n_head}")
    vocab, scores, types = build_vocab()
    writer = gguf.GGUFWriter(path, "llama")
    _add_metadata(writer, spec, vocab)
    writer.add_token_list(vocab)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    for name, tensor in _tensors(spec, len(vocab)):
        writer.add_tensor(name, tensor)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def cached_model_path(spec: TinyModelSpec = TinyModelSpec()) -> Path:
    """Cache location for ``spec``: ``$LLM_ROUTER_CACHE`` or ``~/.cache/llm-router/models``, keyed by hash."""
    root = os.environ.get("LLM_ROUTER_CACHE")
    base = Path(root) if root else Path.home() / ".cache" / "llm-router" / "models"
    key = json.dumps({"v": GENERATOR_VERSION, **dataclasses.asdict(spec)}, sort_keys=True)
    return base / f"{spec.name}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.gguf"


def ensure_model(spec: TinyModelSpec = TinyModelSpec(), progress: Callable[[str], None] | None = None) -> Path:
    """Return the cached model for ``spec``, generating it first (atomically) if it is missing."""
    path = cached_model_path(spec)
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    if progress:
        progress(f"generating model {spec.name} at {path}")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        generate_tiny_model(Path(tmp), spec)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    if progress:
        progress(f"model ready: {path} ({path.stat().st_size} bytes)")
    return path
