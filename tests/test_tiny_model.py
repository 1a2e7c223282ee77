"""The generated tiny GGUF model: deterministic, well-formed, cached atomically."""

from pathlib import Path

import gguf
import pytest

from extproc.local.tiny_model import (
    CHATML_TEMPLATE,
    TinyModelSpec,
    build_vocab,
    cached_model_path,
    ensure_model,
    generate_tiny_model,
)


def _field(reader: gguf.GGUFReader, key: str) -> object:
    return reader.fields[key].contents()


def test_same_spec_gives_identical_bytes(tmp_path: Path) -> None:
    a = generate_tiny_model(tmp_path / "a.gguf")
    b = generate_tiny_model(tmp_path / "b.gguf")
    assert a.read_bytes() == b.read_bytes()


def test_seed_changes_weights(tmp_path: Path) -> None:
    a = generate_tiny_model(tmp_path / "a.gguf", TinyModelSpec(seed=0))
    b = generate_tiny_model(tmp_path / "b.gguf", TinyModelSpec(seed=1))
    assert a.read_bytes() != b.read_bytes()


def test_vocab_is_spm_style_with_unique_tokens() -> None:
    tokens, scores, types = build_vocab()
    assert len(tokens) == len(set(tokens)) == len(scores) == len(types)
    assert 300 <= len(tokens) <= 1000
    assert tokens[:3] == ["<unk>", "<s>", "</s>"]
    byte_tokens = [t for t, kind in zip(tokens, types, strict=True) if kind == gguf.TokenType.BYTE]
    assert byte_tokens == [f"<0x{b:02X}>" for b in range(256)]
    assert {"<|im_start|>", "<|im_end|>", "\u2581the", "\u2581hello"} <= set(tokens)


def test_metadata_and_tensors(tmp_path: Path) -> None:
    spec = TinyModelSpec(name="meta", n_layers=3, n_embd=32, n_head=2, n_ff=48, context_length=1024)
    reader = gguf.GGUFReader(generate_tiny_model(tmp_path / "m.gguf", spec))
    assert _field(reader, "general.architecture") == "llama"
    assert _field(reader, "general.name") == "meta"
    assert _field(reader, "llama.context_length") == 1024
    assert _field(reader, "llama.block_count") == 3
    assert _field(reader, "tokenizer.ggml.model") == "llama"
    assert _field(reader, "tokenizer.chat_template") == CHATML_TEMPLATE
    assert _field(reader, "tokenizer.ggml.tokens") == build_vocab()[0]
    shapes = {t.name: t.shape.tolist() for t in reader.tensors}
    assert len(shapes) == 2 + 1 + 9 * 3
    assert shapes["blk.2.ffn_down.weight"] == [48, 32]
    assert shapes["output.weight"] == [32, len(build_vocab()[0])]


def test_rejects_heads_not_dividing_width(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="divisible"):
        generate_tiny_model(tmp_path / "x.gguf", TinyModelSpec(n_embd=30, n_head=4))


def test_cache_path_depends_on_spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_ROUTER_CACHE", str(tmp_path))
    path = cached_model_path(TinyModelSpec())
    assert path.parent == tmp_path and path.name.startswith("tiny-llama-")
    assert path == cached_model_path(TinyModelSpec())
    assert path != cached_model_path(TinyModelSpec(seed=1))


def test_ensure_model_generates_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_ROUTER_CACHE", str(tmp_path / "cache"))
    messages: list[str] = []
    path = ensure_model(progress=messages.append)
    assert path == cached_model_path() and path.is_file()
    assert len(messages) == 2
    mtime = path.stat().st_mtime_ns
    assert ensure_model(progress=messages.append) == path
    assert len(messages) == 2 and path.stat().st_mtime_ns == mtime
    assert [p.name for p in path.parent.iterdir()] == [path.name]
    assert path.read_bytes() == generate_tiny_model(tmp_path / "fresh.gguf").read_bytes()
