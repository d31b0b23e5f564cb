"""onnx:DIR with a tiny model built by the tests: loading, pooling, prefixes, the token
limit, the identity check, devices, and ``codesift models``."""

from __future__ import annotations

import json
import os
import subprocess

import numpy as np
import pytest

from codesift.embedding import embed_queries, load_embedder
from codesift.errors import ConfigError
from support.harness import sample_tree
from support.tiny_onnx import HIDDEN, build_tiny_model, reference

TEXTS = ["def add ( a , b ) : return a + b", "parse xml document", "x", "class http client : self . value = none"]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return {
        "mean": build_tiny_model(root / "tiny-mean", pooling="mean", prompts={"query": "query : ",
                                                                               "document": ""}),
        "cls": build_tiny_model(root / "tiny-cls", pooling="cls"),
        "short": build_tiny_model(root / "tiny-short", max_seq_length=48),
    }


def test_loads_the_folder_config(models):
    emb = load_embedder(f"onnx:{models['mean']}")
    assert emb.dim == HIDDEN and emb.max_tokens == 64 and emb.pooling == "mean" and emb.normalize
    assert emb.name.startswith("onnx:tiny-mean-")
    assert emb.query_prefix == "query : " and emb.document_prefix == ""
    assert emb.device == "cpu"  # auto, and no CUDA provider here
    vecs = emb.embed(TEXTS)
    assert vecs.shape == (4, HIDDEN) and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert emb.embed([]).shape == (0, HIDDEN)


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_pooling_matches_the_reference_and_padding_changes_nothing(models, pooling):
    emb = load_embedder(f"onnx:{models[pooling]}")
    batch = emb.embed(TEXTS)
    np.testing.assert_allclose(batch, reference(models[pooling], TEXTS, pooling=pooling), atol=1e-5)
    one_by_one = np.vstack([emb.embed([t]) for t in TEXTS])
    np.testing.assert_allclose(batch, one_by_one, atol=1e-5)


def test_pooling_option_overrides_and_mean_differs_from_cls(models):
    mean = load_embedder(f"onnx:{models['cls']}?pooling=mean")
    cls = load_embedder(f"onnx:{models['cls']}")
    assert mean.name != cls.name  # other vectors, other identity
    assert not np.allclose(mean.embed(TEXTS), cls.embed(TEXTS), atol=1e-3)


def test_prefixes_from_the_folder_and_from_options(models):
    folder = models["mean"]
    emb = load_embedder(f"onnx:{folder}")
    np.testing.assert_allclose(embed_queries(emb, ["sum numbers"]),
                               reference(folder, ["query : sum numbers"], pooling="mean"), atol=1e-5)
    np.testing.assert_allclose(emb.embed(["sum numbers"]), reference(folder, ["sum numbers"], pooling="mean"),
                               atol=1e-5)
    custom = load_embedder(f"onnx:{folder}?query_prefix=def%20&document_prefix=passage%20:%20")
    np.testing.assert_allclose(embed_queries(custom, ["add"]), reference(folder, ["def add"], pooling="mean"),
                               atol=1e-5)
    np.testing.assert_allclose(custom.embed(["add"]), reference(folder, ["passage : add"], pooling="mean"),
                               atol=1e-5)
    # A document prefix changes the stored vectors: it changes the identity too.
    assert custom.name != emb.name
    # count_tokens sizes chunks as they are embedded: prefix included.
    assert custom.count_tokens(["add"]) == [emb.count_tokens(["add"])[0] + 2]


def test_token_limit_from_config_and_its_bounds(models):
    assert load_embedder(f"onnx:{models['short']}").max_tokens == 48  # sentence_bert_config.json
    assert load_embedder(f"onnx:{models['short']}?max_tokens=32").max_tokens == 32
    folder = models["mean"].parent / "no-st-config"
    build_tiny_model(folder, max_seq_length=None)
    assert load_embedder(f"onnx:{folder}").max_tokens == 128  # config.json max_position_embeddings
    with pytest.raises(ConfigError, match="above the model's 128 positions"):
        load_embedder(f"onnx:{folder}?max_tokens=1000")


def test_bad_folders_and_options_fail_with_one_clear_line(models, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match="has no model.onnx and no tokenizer.json"):
        load_embedder(f"onnx:{empty}")
    with pytest.raises(ConfigError, match="not a folder"):
        load_embedder(f"onnx:{tmp_path / 'missing'}")
    with pytest.raises(ConfigError, match="unknown option.*colour"):
        load_embedder(f"onnx:{models['mean']}?colour=red")
    with pytest.raises(ConfigError, match="pooling must be one of"):
        load_embedder(f"onnx:{models['mean']}?pooling=weighted")
    with pytest.raises(ConfigError, match="no CUDA provider") as info:
        load_embedder(f"onnx:{models['mean']}?device=cuda")
    assert "codesift[gpu]" in info.value.one_line() and "\n" not in info.value.one_line()
    with pytest.raises(ConfigError, match="device must be one of"):
        load_embedder(f"onnx:{models['mean']}?device=tpu")
    assert load_embedder(f"onnx:{models['mean']}?device=auto").device == "cpu"
    assert load_embedder("minilm?device=cpu").device == "cpu"


def test_cli_index_identity_token_limit_and_search(cs, models):
    sample_tree(cs.root, files=2)
    (cs.root / "long.py").write_text("def long_function(value):\n" + "".join(
        f"    total_{i} = value * {i} + value * {i + 1} + value * {i + 2}\n" for i in range(60)) + "    return total_0\n")
    mean, cls = str(models["mean"]), str(models["cls"])
    # A relative folder is stored absolute: search runs from anywhere.
    relative = os.path.relpath(mean, cs.tmp)
    r = subprocess.run(cs.index_args(f"onnx:{relative}", "--device", "cpu"), capture_output=True, text=True,
                       timeout=120, env=cs.env(), cwd=cs.tmp)
    assert r.returncode == 0, r.stderr
    emb = load_embedder(f"onnx:{mean}")
    from codesift.pipeline.stages import chunk_budget

    rows = cs.rows()
    assert {"mod_00.py", "long.py"} <= {row[1] for row in rows} and sum(row[1] == "long.py" for row in rows) > 3
    budget = chunk_budget(emb)
    assert all(n <= budget for n in emb.count_tokens([row[4] for row in rows]))  # nothing truncated
    # Search embeds the query with the folder's query prefix, through the stored spec.
    s = cs.run(cs.argv("search", "return value", "--root", str(cs.root), "--index-dir", str(cs.index_dir),
                       "--mode", "vector", "-k", "2", "--json"))
    assert s.code == 0, s.stderr
    assert json.loads(s.stdout)
    # Another model is refused without --full, and replaces the index with it.
    (cs.root / "mod_00.py").write_text("def changed():\n    return 1\n")
    refused = cs.index(f"onnx:{cls}")
    assert refused.code != 0 and "--full" in refused.stderr and "onnx:tiny-cls-" in refused.stderr, refused.stderr
    full = cs.index(f"onnx:{cls}", "--full")
    assert full.code == 0, full.stderr
    cuda = cs.index(f"onnx:{cls}", "--device", "cuda")
    assert cuda.code == 2 and "no CUDA provider" in cuda.stderr and "codesift[gpu]" in cuda.stderr


def test_models_lists_embedders_and_cached_folders(cs, models, tmp_path):
    cache = tmp_path / "cache"
    build_tiny_model(cache / "my-export")
    r = cs.run(cs.argv("models", "--json"), env=cs.env(CODESIFT_MODEL_CACHE=str(cache), OPENAI_API_KEY="sk-x"))
    assert r.code == 0, r.stderr
    report = json.loads(r.stdout)
    specs = {m["spec"]: m for m in report["models"]}
    assert specs["minilm"]["available"] and specs["hash"]["available"]
    assert f"onnx:{cache / 'my-export'}" in specs
    assert specs["openai:MODEL"]["available"] and "sk-x" not in r.stdout
    assert report["devices"]["cuda"] is False and "codesift[gpu]" in report["devices"]["cuda_hint"]
    text = cs.run(cs.argv("models"))
    assert text.code == 0 and "Add more" in text.stdout and "onnx:DIR" in text.stdout


def test_gpu_memory_is_part_of_the_memory_guard(monkeypatch):
    """No GPU here: a fake device reading drives the same wait, deadline and error as RSS."""
    import asyncio

    from codesift.embedding import device
    from codesift.errors import MemoryLimitError
    from codesift.pipeline.memory import MemoryGuard

    used = {"bytes": 9 << 30}
    monkeypatch.setattr(device, "gpu_memory", lambda gpu_id=0: device.GpuMemory(used["bytes"], 10 << 30))

    class Owner:
        pass

    owner = Owner()
    assert device.gpu_limit_for(owner, "onnx:/models/x?device=cuda", None) == int(9 << 30)  # 90% default
    guard = MemoryGuard(limit=1 << 60, wait_timeout_s=0.3)
    asyncio.run(guard.admit("embed"))  # at the limit, not over it: admitted
    used["bytes"] = (9 << 30) + 1
    with pytest.raises(MemoryLimitError) as info:
        asyncio.run(guard.admit("embed"))
    line = info.value.one_line()
    assert "GPU 0 (onnx:/models/x?device=cuda)" in line and "9.0 GiB" in line and "--gpu-memory-limit" in line

    async def frees_memory_later():
        loop = asyncio.get_running_loop()
        loop.call_later(0.1, used.update, {"bytes": 1 << 30})
        await guard.admit("embed")

    guard.wait_timeout_s = 5.0
    asyncio.run(frees_memory_later())  # waits, then goes on once memory is free again
    assert not guard.under_pressure
    del owner  # the budget goes with its embedder
    import gc

    gc.collect()
    used["bytes"] = 20 << 30
    assert device.gpu_pressure() is None
