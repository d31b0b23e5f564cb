"""Tests for codesift.embedding: protocol checks, spec loading, hash and MiniLM embedders."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from codesift.embedding import (
    Embedder,
    check_embedder,
    count_tokens_for,
    estimate_tokens,
    load_embedder,
)
from codesift.errors import ConfigError

ADD = "def add(a, b): return a + b"
SUM_DOC = "function that sums two numbers"
XML_DOC = "parse an XML document"


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


# -- import cost -------------------------------------------------------------------------


def test_import_does_not_load_model_libraries():
    code = (
        "import sys, codesift.embedding\n"
        "bad = [m for m in ('onnxruntime', 'tokenizers', 'torch') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# -- hash embedder -----------------------------------------------------------------------


def test_hash_shape_dtype_norm_and_protocol():
    emb = load_embedder("hash")
    assert isinstance(emb, Embedder)
    assert emb.name == "hash-256" and emb.dim == 256 and emb.max_tokens is None
    vecs = emb.embed(["def foo(): pass", "", "()", "x = 1"])
    assert vecs.shape == (4, 256) and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert emb.embed([]).shape == (0, 256)


def test_hash_custom_dim_and_bad_dim():
    emb = load_embedder("hash:64")
    assert emb.name == "hash-64" and emb.embed(["a b"]).shape == (1, 64)
    with pytest.raises(ConfigError):
        load_embedder("hash:abc")
    with pytest.raises(ConfigError):
        load_embedder("hash:2")


def test_hash_deterministic_across_instances_and_processes():
    texts = ["def parse_xml(doc): return etree.fromstring(doc)", "class HttpClient: pass"]
    a = load_embedder("hash").embed(texts)
    b = load_embedder("hash").embed(list(reversed(texts)))[::-1]
    np.testing.assert_array_equal(a, b)
    code = (
        "import numpy as np, sys\nfrom codesift.embedding import load_embedder\n"
        f"sys.stdout.write(load_embedder('hash').embed({texts!r}).tobytes().hex())"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert bytes.fromhex(out.stdout) == a.tobytes()


def test_hash_vectors_do_not_depend_on_how_a_batch_is_grouped(monkeypatch):
    from codesift.embedding import hashing

    texts = ["def parse_xml(doc): return etree.fromstring(doc)", "", "!!", "class HttpClient: pass",
             " ".join(f"token{i:05d}" for i in range(5000))]  # one long text of distinct words
    whole = load_embedder("hash").embed(texts)
    # tiny bounds: every text its own group, a few distinct words per block
    monkeypatch.setattr(hashing, "_MAX_CELLS", 4)
    monkeypatch.setattr(hashing, "_BLOCK_WORDS", 3)
    grouped = load_embedder("hash").embed(texts)
    np.testing.assert_allclose(grouped, whole, rtol=0, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(grouped, axis=1), 1.0, atol=1e-6)


def test_hash_lexical_similarity():
    emb = load_embedder("hash")
    q, near, far = emb.embed(
        [
            "parse xml document",
            "def parse_xml_document(path): return xml.parse(path)",
            "def add(a, b): return a + b",
        ]
    )
    assert _cos(q, near) > _cos(q, far) + 0.2
    # camelCase and snake_case share pieces
    a, b, c = emb.embed(["getUserName", "get_user_name", "compute_checksum"])
    assert _cos(a, b) > 0.5 > _cos(a, c)


def test_hash_count_tokens():
    emb = load_embedder("hash")
    assert emb.count_tokens(["a = b(c)", ""]) == [3, 1]  # a length estimate: it only sizes chunks
    assert count_tokens_for(emb) == emb.count_tokens


# -- spec errors -------------------------------------------------------------------------


@pytest.mark.parametrize("spec", ["", "bert", "minilm:large", "openai"])
def test_unknown_spec_lists_valid_specs(spec):
    with pytest.raises(ConfigError) as info:
        load_embedder(spec)
    msg = info.value.one_line()
    assert "minilm" in msg and "hash" in msg and "python:MODULE:ATTR" in msg
    assert "\n" not in msg


# -- python:MODULE:ATTR ------------------------------------------------------------------

FACTORY_MODULE = textwrap.dedent(
    """
    import numpy as np

    class Tiny:
        name = "tiny-8"
        dim = 8
        max_tokens = None

        def embed(self, texts):
            out = np.zeros((len(texts), 8), dtype=np.float32)
            out[:, 0] = 1.0
            return out

    class Counting(Tiny):
        name = "counting-8"
        max_tokens = 100
        def count_tokens(self, texts):
            return [len(t) for t in texts]

    class NoEmbed:
        name = "x"
        dim = 8
        max_tokens = None

    class BadDim(Tiny):
        dim = "8"

    class WrongShape(Tiny):
        def embed(self, texts):
            return np.zeros((len(texts), 3), dtype=np.float32)

    class WrongDtype(Tiny):
        def embed(self, texts):
            return np.zeros((len(texts), 8), dtype=np.float64)

    def make():
        return Tiny()

    def make_counting():
        return Counting()

    def boom():
        raise RuntimeError("no GPU here")

    def none():
        return None

    not_callable = 42
    make_no_embed = NoEmbed
    make_bad_dim = BadDim
    make_wrong_shape = WrongShape
    make_wrong_dtype = WrongDtype

    class Factories:
        @staticmethod
        def make():
            return Tiny()
    """
)


@pytest.fixture
def factory_module(tmp_path, monkeypatch):
    name = "cs_test_embed_factories"
    (tmp_path / f"{name}.py").write_text(FACTORY_MODULE)
    (tmp_path / "cs_test_broken_import.py").write_text("import does_not_exist_xyz\n")
    (tmp_path / "cs_test_raising_import.py").write_text("raise ValueError('bad config at import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for mod in (name, "cs_test_broken_import", "cs_test_raising_import"):
        monkeypatch.delitem(sys.modules, mod, raising=False)
    return name


def test_python_factory_success(factory_module):
    emb = load_embedder(f"python:{factory_module}:make")
    assert emb.name == "tiny-8" and emb.dim == 8
    assert emb.embed(["a", "b"]).shape == (2, 8)
    # no count_tokens: the conservative estimate is used
    assert count_tokens_for(emb) is estimate_tokens
    dotted = load_embedder(f"python:{factory_module}:Factories.make")
    assert dotted.name == "tiny-8"
    counting = load_embedder(f"python:{factory_module}:make_counting")
    assert count_tokens_for(counting)(["abc"]) == [3]


@pytest.mark.parametrize(
    "attr_or_spec, expected",
    [
        ("python:cs_test_no_such_module:make", "not found"),
        ("python:cs_test_broken_import:make", "does_not_exist_xyz"),
        ("python:cs_test_raising_import:make", "bad config at import"),
        ("{mod}:missing", "no attribute 'missing'"),
        ("{mod}:not_callable", "not callable"),
        ("{mod}:boom", "RuntimeError: no GPU here"),
        ("{mod}:none", "returned None"),
        ("{mod}:make_no_embed", "missing embed"),
        ("{mod}:make_bad_dim", "dim must be a positive int"),
        ("python:only_module", "python:MODULE:ATTR"),
        ("python::make", "python:MODULE:ATTR"),
    ],
)
def test_python_factory_failures(factory_module, attr_or_spec, expected):
    spec = attr_or_spec.replace("{mod}", f"python:{factory_module}")
    with pytest.raises(ConfigError) as info:
        load_embedder(spec)
    msg = info.value.one_line()
    assert expected in msg, msg
    assert spec in msg and "\n" not in msg
    assert info.value.exit_code == 2


def test_check_embedder_accepts_and_rejects():
    class Ok:
        name, dim, max_tokens = "ok", 4, 10

        def embed(self, texts):
            return np.zeros((len(texts), 4), np.float32)

    assert check_embedder(Ok(), "s") is not None
    bad = Ok()
    bad.max_tokens = 0
    with pytest.raises(ConfigError, match="max_tokens"):
        check_embedder(bad, "s")
    bad = Ok()
    bad.name = ""
    with pytest.raises(ConfigError, match="name"):
        check_embedder(bad, "s")
    bad = Ok()
    bad.dim = True
    with pytest.raises(ConfigError, match="dim"):
        check_embedder(bad, "s")


# -- token estimate ----------------------------------------------------------------------


def test_estimate_tokens_is_conservative_and_monotone():
    assert estimate_tokens([""]) == [2]
    short, long = estimate_tokens(["x = 1", "x = 1\n" * 50])
    assert long > short


# -- MiniLM (real model) -----------------------------------------------------------------


@pytest.fixture(scope="module")
def minilm():
    return load_embedder("minilm")


def test_minilm_attributes(minilm):
    assert isinstance(minilm, Embedder)
    assert (minilm.name, minilm.dim, minilm.max_tokens) == ("minilm-l6-v2-int8pc", 384, 256)
    assert minilm.threads >= 1


def test_minilm_shape_dtype_norm_empty(minilm):
    vecs = minilm.embed([ADD, SUM_DOC, "", "x" * 5000])
    assert vecs.shape == (4, 384) and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-4)
    empty = minilm.embed([])
    assert empty.shape == (0, 384) and empty.dtype == np.float32


def test_minilm_semantic_sanity(minilm):
    code, sums, xml = minilm.embed([ADD, SUM_DOC, XML_DOC])
    assert _cos(code, sums) > _cos(code, xml) + 0.05
    q, read_file, sort = minilm.embed(
        [
            "read the contents of a file",
            "def load(path):\n    with open(path) as f:\n        return f.read()",
            "def order(items):\n    return sorted(items, key=lambda x: x.rank)",
        ]
    )
    assert _cos(q, read_file) > _cos(q, sort)


def test_minilm_deterministic_and_batch_invariant(minilm):
    long_texts = [f"def handler_{i}(request):\n" + "    x = compute(request, value)\n" * 20 for i in range(7)]
    alone = minilm.embed([ADD])[0]
    again = minilm.embed([ADD])[0]
    np.testing.assert_array_equal(alone, again)
    batch = minilm.embed(long_texts[:3] + [ADD] + long_texts[3:])
    # Dynamic int8 quantizes activations per call, so a text's vector depends slightly on
    # the texts that share its call (cosine ~0.993 measured): close, not bit-identical.
    assert _cos(alone, batch[3]) > 0.99
    # order is restored after the internal length sort
    for i, text in enumerate(long_texts[:3]):
        assert _cos(minilm.embed([text])[0], batch[i]) > 0.99


def test_minilm_truncates_at_256_tokens(minilm):
    base = "alpha beta gamma delta " * 100  # far over 256 tokens
    a, b = minilm.embed([base, base + " completely different tail about databases"])
    assert _cos(a, b) > 0.9999  # the tail is cut off by truncation


def test_minilm_count_tokens(minilm):
    assert minilm.count_tokens([]) == []
    # [CLS] + pieces + [SEP]; known WordPiece counts of the shipped vocabulary
    assert minilm.count_tokens(["", "hello world", "def add(a, b): return a + b"]) == [2, 4, 14]
    long = "word " * 1000
    assert minilm.count_tokens([long]) == [1002]  # no truncation when counting
    assert count_tokens_for(minilm) == minilm.count_tokens


def test_minilm_sizing_without_the_model_counts_as_the_model_does(minilm):
    from codesift.embedding.identity import builtin_chunking
    from codesift.pipeline import stages

    sizing = builtin_chunking("minilm?device=cpu")  # options do not change the tokenizer
    texts = ["", "hello world", ADD, "naïve café 日本語", "x" * 70_000, "word " * 1000]
    assert sizing.count_tokens(texts) == minilm.count_tokens(texts)
    assert stages.chunk_budget(sizing) == stages.chunk_budget(minilm)
    assert stages.hard_token_limit(sizing) == stages.hard_token_limit(minilm)
    assert builtin_chunking("hash") is None and builtin_chunking("static") is None
    assert builtin_chunking("minilm:bogus") is None  # not minilm's tokenizer: load the embedder


def test_estimate_never_undercounts_minilm_on_code(minilm):
    import inspect

    import codesift.errors as errors_mod

    sources = [inspect.getsource(obj) for obj in vars(errors_mod).values() if inspect.isclass(obj) and obj.__module__ == errors_mod.__name__]
    sources += [inspect.getsource(textwrap), ADD, "x = 0xDEADBEEF12345678", "naïve café 日本語"]
    real = minilm.count_tokens(sources)
    est = estimate_tokens(sources)
    assert all(e >= r for e, r in zip(est, real)), list(zip(est, real))


def test_the_embedding_cache_returns_what_it_stored(tmp_path):
    """Vectors stored in one call come back by key, bit for bit; a second store replaces; a
    vector of another size is neither stored nor returned."""
    import numpy as np

    from codesift.store.embed_cache import EmbedCache

    cache = EmbedCache(tmp_path / "cache.sqlite", "test-embedder", 4)
    try:
        items = [(cache.key(f"text {i}"), np.arange(4, dtype=np.float32) / (i + 1)) for i in range(40)]
        cache.put_many(items + [(cache.key("short"), np.zeros(3, dtype=np.float32))])
        got = cache.get_many([k for k, _ in items] + [cache.key("short"), cache.key("never stored")])
        assert set(got) == {k for k, _ in items}
        assert all(got[k].tobytes() == v.tobytes() for k, v in items)
        cache.put_many([(items[0][0], np.ones(4, dtype=np.float32))])
        assert cache.get_many([items[0][0]])[items[0][0]].tolist() == [1.0, 1.0, 1.0, 1.0]
    finally:
        cache.close()
