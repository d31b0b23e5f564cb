"""A tiny sentence-transformers-style ONNX export, built by the tests (no download).

Three layers over a 40-word vocabulary: token embeddings, a tanh projection, and a
masked context mix (each token plus a projection of the masked mean of all tokens), so
CLS pooling sees the whole text and padding never changes a vector. ``reference`` runs
the same network in numpy, to check the embedder's pooling and normalisation.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

HIDDEN = 16
WORDS = ("def return value total class import os self if else for in while none true false "
         "query passage function scaled by parse xml document http client add sum numbers "
         "( ) : = , * + . ' ").split()
SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]")


def _tokenizer(path: Path) -> None:
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    vocab = {w: i for i, w in enumerate(SPECIALS + tuple(dict.fromkeys(WORDS)))}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    tok.save(str(path))


def _weights(seed: int, vocab: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "E": rng.standard_normal((vocab, HIDDEN)).astype(np.float32),
        "W1": (rng.standard_normal((HIDDEN, HIDDEN)) / 4).astype(np.float32),
        "b1": (rng.standard_normal(HIDDEN) / 10).astype(np.float32),
        "W2": (rng.standard_normal((HIDDEN, HIDDEN)) / 4).astype(np.float32),
    }


def _model(path: Path, w: dict[str, np.ndarray]) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    inits = [numpy_helper.from_array(v, k) for k, v in w.items()]
    inits += [numpy_helper.from_array(np.array([2], dtype=np.int64), "ax2"),
              numpy_helper.from_array(np.array([1], dtype=np.int64), "ax1")]
    nodes = [
        helper.make_node("Gather", ["E", "input_ids"], ["emb"]),
        helper.make_node("MatMul", ["emb", "W1"], ["p1"]),
        helper.make_node("Add", ["p1", "b1"], ["p2"]),
        helper.make_node("Tanh", ["p2"], ["h1"]),
        helper.make_node("Cast", ["attention_mask"], ["maskf"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["maskf", "ax2"], ["m3"]),
        helper.make_node("Mul", ["h1", "m3"], ["hm"]),
        helper.make_node("ReduceSum", ["hm", "ax1"], ["s"], keepdims=1),
        helper.make_node("ReduceSum", ["m3", "ax1"], ["cnt"], keepdims=1),
        helper.make_node("Div", ["s", "cnt"], ["ctx"]),
        helper.make_node("MatMul", ["ctx", "W2"], ["mix"]),
        helper.make_node("Add", ["h1", "mix"], ["last_hidden_state"]),
    ]
    ints = lambda name: helper.make_tensor_value_info(name, TensorProto.INT64, ["batch", "seq"])  # noqa: E731
    graph = helper.make_graph(
        nodes, "tiny-encoder", [ints("input_ids"), ints("attention_mask"), ints("token_type_ids")],
        [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "seq", HIDDEN])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def build_tiny_model(folder: Path, *, pooling: str = "mean", max_seq_length: int | None = 64,
                     prompts: dict | None = None, seed: int = 0, normalize: bool = True) -> Path:
    """Write a model folder: model.onnx, tokenizer.json and the sentence-transformers configs."""
    folder.mkdir(parents=True, exist_ok=True)
    _tokenizer(folder / "tokenizer.json")
    vocab = len(SPECIALS) + len(dict.fromkeys(WORDS))
    _model(folder / "model.onnx", _weights(seed, vocab))
    (folder / "1_Pooling").mkdir(exist_ok=True)
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({
        "word_embedding_dimension": HIDDEN,
        "pooling_mode_cls_token": pooling == "cls",
        "pooling_mode_mean_tokens": pooling == "mean",
        "pooling_mode_max_tokens": False,
    }))
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
    if normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": HIDDEN,
                                                    "max_position_embeddings": 128}))
    if max_seq_length is not None:
        (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": max_seq_length}))
    if prompts is not None:
        (folder / "config_sentence_transformers.json").write_text(json.dumps({"prompts": prompts}))
    return folder


def reference(folder: Path, texts: list[str], *, pooling: str, seed: int = 0, max_len: int = 64,
              normalize: bool = True) -> np.ndarray:
    """The same network in numpy, one text at a time (no padding at all)."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tok.enable_truncation(max_length=max_len)
    vocab = len(SPECIALS) + len(dict.fromkeys(WORDS))
    w = _weights(seed, vocab)
    out = []
    for text in texts:
        ids = np.array(tok.encode(text).ids)
        h1 = np.tanh(w["E"][ids] @ w["W1"] + w["b1"])
        hidden = h1 + h1.mean(axis=0, keepdims=True) @ w["W2"]
        v = hidden[0] if pooling == "cls" else hidden.mean(axis=0)
        out.append(v / np.linalg.norm(v) if normalize else v)
    return np.asarray(out, dtype=np.float32)
