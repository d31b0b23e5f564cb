"""Search-side indexes over the ``chunks`` table, rebuilt after index writes.

* a full-text (BM25) index on ``search_text`` (``content`` on tables written before
  that column existed), tokenised on whitespace: the identifier splitting is done by
  :mod:`codesift.search.tokens` before the text is stored;
* a BTree index on ``path`` (prefix globs, ``similar``) and a bitmap index on
  ``language`` (``--lang``).

Staleness is harmless for correctness: LanceDB answers full-text and filtered queries
over rows added after an index was built with a flat (unindexed) pass over just those
rows, and deleted rows never come back. Without any FTS index at all the text leg is a
flat BM25 pass over the table: still right, only slower. So the indexing pipeline calls
:func:`refresh_search_indexes` after a run that changed rows, to keep searches fast.
"""

from __future__ import annotations

import logging

from ..store.schema import SEARCH_TEXT

log = logging.getLogger("codesift.search")

FTS_OPTIONS = dict(base_tokenizer="whitespace", with_position=False, lower_case=True, stem=True,
                   remove_stop_words=True, ascii_folding=True, language="English", max_token_length=40)


def text_column(table) -> str:
    return SEARCH_TEXT if SEARCH_TEXT in table.schema.names else "content"


def refresh_search_indexes(store) -> dict:
    """(Re)build the FTS and scalar indexes of ``store`` (a ``ChunkStore``, or a LanceDB
    table). Cheap to call: does nothing on a missing or empty table. Returns what it did.
    Errors are logged, not raised: searches still work without these indexes."""
    table = getattr(store, "table", store)
    done: dict = {"fts": False, "path": False, "language": False}
    if table is None:
        return done
    try:
        if table.count_rows() == 0:
            return done
    except Exception as exc:  # noqa: BLE001 - see docstring
        log.warning("search indexes not refreshed: %s", exc)
        return done
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # create_fts_index / create_scalar_index deprecation notes
        try:
            table.create_fts_index(text_column(table), replace=True, **FTS_OPTIONS)
            done["fts"] = True
        except Exception as exc:  # noqa: BLE001
            log.warning("full-text index not rebuilt (text search falls back to a flat scan): %s", exc)
        for column, kind in (("path", "BTREE"), ("language", "BITMAP")):
            try:
                table.create_scalar_index(column, index_type=kind, replace=True)
                done[column] = True
            except Exception as exc:  # noqa: BLE001
                log.warning("scalar index on %s not rebuilt: %s", column, exc)
    return done


def refresh_index_dir(index_dir) -> dict:
    """:func:`refresh_search_indexes` for the index at ``index_dir`` (opens the store)."""
    from pathlib import Path

    from ..store.chunks import ChunkStore
    from ..store.layout import IndexLayout

    return refresh_search_indexes(ChunkStore(IndexLayout(Path(index_dir)).lancedb))


def rebuild_search_text(store, batch_rows: int = 4096) -> int:
    """Recompute the ``search_text`` column from path/symbol/content (no re-embedding):
    after a change to :mod:`codesift.search.tokens`, or to migrate a table written before
    the column existed. Takes the writer's place: call it under the index's writer lock.
    Returns the number of rows rewritten; then run :func:`refresh_search_indexes`."""
    import pyarrow as pa

    from .tokens import index_text

    table = getattr(store, "table", store)
    if table is None:
        return 0
    if SEARCH_TEXT not in table.schema.names:
        table.add_columns({SEARCH_TEXT: "content"})
    data = table.search().select(["id", "path", "symbol", "content"]).limit(None).to_arrow()
    done = 0
    for start in range(0, data.num_rows, batch_rows):
        part = data.slice(start, batch_rows)
        text = [index_text(p, s or "", c or "") for p, s, c in zip(
            part["path"].to_pylist(), part["symbol"].to_pylist(), part["content"].to_pylist())]
        table.merge_insert("id").when_matched_update_all().execute(
            pa.table({"id": part["id"], SEARCH_TEXT: pa.array(text, type=pa.string())}))
        done += part.num_rows
    return done


def ensure_search_text(store) -> bool:
    """Migrate a chunk table written before the ``search_text`` column existed (adds and
    fills it; no re-embedding). Cheap when there is nothing to do. Call it under the
    writer lock before adding rows built by ``build_rows``. True when it migrated."""
    table = getattr(store, "table", store)
    if table is None or SEARCH_TEXT in table.schema.names:
        return False
    rebuild_search_text(table)
    return True
