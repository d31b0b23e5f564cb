"""The resident search process: CLI searches answered by a warm process of the same index.

Each test gives the process its own runtime directory (``TMPDIR``) and kills it at the
end. Checked through the CLI and :mod:`codesift.search.resident`: the first search starts
it and later ones get the same answers from it; it follows index runs; it exits when idle,
when its index goes, and for a client of another build; a dead one (kill -9) is replaced
and never makes a search fail; errors read as they do in-process.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
from pathlib import Path

import pytest
from support.harness import Codesift, sample_tree, wait_for

from codesift.search import resident


@pytest.fixture()
def cs(tmp_path, monkeypatch):
    c = Codesift(tmp_path)
    sample_tree(c.root)
    assert c.index().code == 0
    run_dir = Path(tempfile.mkdtemp(prefix="cs-", dir="/tmp"))  # short: AF_UNIX paths are
    monkeypatch.setenv("TMPDIR", str(run_dir))
    monkeypatch.setenv(resident.ENV, "on")
    monkeypatch.setenv("CODESIFT_RESIDENT_IDLE_S", "60")
    monkeypatch.setattr(resident.tempfile, "tempdir", None)  # re-read TMPDIR
    yield c
    pid = resident.server_pid(c.root, c.index_dir)
    if pid:
        os.kill(pid, signal.SIGKILL)
    shutil.rmtree(run_dir, ignore_errors=True)


def env(cs: Codesift, **extra: str) -> dict:
    e = cs.env(**extra)
    e[resident.ENV] = extra.get(resident.ENV, "on")
    return e


def search(cs: Codesift, query: str, *extra: str, **more: str):
    r = cs.run(cs.argv("search", query, "--root", str(cs.root), "--index-dir", str(cs.index_dir), "--json",
                       "-k", "5", *extra), env=env(cs, **more))
    assert r.code == 0, r.stderr
    return json.loads(r.stdout)


def serving(cs: Codesift) -> int:
    return wait_for(lambda: resident.server_pid(cs.root, cs.index_dir) if resident.socket_path(
        cs.root, cs.index_dir).exists() else None, 60, "the resident process to listen")


def test_the_first_search_starts_it_and_later_ones_get_the_same_answers_from_it(cs):
    first = search(cs, "scaled value total")
    pid = serving(cs)
    assert search(cs, "scaled value total") == first
    reply = resident.ask(cs.root, cs.index_dir, {"op": "search", "queries": ["scaled value total"], "k": 5,
                                                 "mode": "hybrid"})
    assert reply["ok"] and [h["id"] for h in reply["hits"][0]] == [h["id"] for h in first]
    assert resident.server_pid(cs.root, cs.index_dir) == pid  # one process served all of them
    assert search(cs, "scaled value total", "--no-server") == first


def test_it_follows_index_runs(cs):
    search(cs, "anything")
    serving(cs)
    (cs.root / "fresh.py").write_text("def quokka_census(island):\n    return island.quokkas\n")
    assert cs.index().code == 0
    hits = search(cs, "quokka census")
    assert hits and hits[0]["path"] == "fresh.py"


def test_a_killed_process_is_replaced_and_no_search_fails(cs):
    first = search(cs, "add two numbers")
    pid = serving(cs)
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: resident.server_pid(cs.root, cs.index_dir) is None, 30, "the killed process to go")
    assert resident.socket_path(cs.root, cs.index_dir).exists()  # its socket stays behind
    assert search(cs, "add two numbers") == first  # in-process, and a new one starts
    assert serving(cs) != pid


def test_it_exits_when_idle_and_when_its_index_goes(cs, monkeypatch):
    search(cs, "add", CODESIFT_RESIDENT_IDLE_S="2")
    serving(cs)
    wait_for(lambda: resident.server_pid(cs.root, cs.index_dir) is None, 30, "the idle process to exit")
    assert not resident.socket_path(cs.root, cs.index_dir).exists()

    search(cs, "add")
    serving(cs)
    os.rename(cs.index_dir, cs.tmp / "moved")
    wait_for(lambda: resident.server_pid(cs.root, cs.index_dir) is None, 30, "the process to notice")


def test_a_client_of_another_build_is_not_answered_and_the_process_exits(cs, monkeypatch):
    search(cs, "add")
    serving(cs)
    monkeypatch.setattr(resident, "build_stamp", lambda: "another build")
    with pytest.raises(resident.Unreachable, match="another codesift build"):
        resident.ask(cs.root, cs.index_dir, {"op": "search", "queries": ["add"], "k": 3})
    wait_for(lambda: resident.server_pid(cs.root, cs.index_dir) is None, 30, "the process to exit")


def test_errors_read_as_they_do_in_process(cs):
    search(cs, "add")
    serving(cs)
    args = ["similar", "nowhere.py:3", "--root", str(cs.root), "--index-dir", str(cs.index_dir)]
    served = cs.run(cs.argv(*args), env=env(cs))
    local = cs.run(cs.argv(*args, "--no-server"), env=env(cs))
    assert served.code == local.code != 0
    assert served.stderr == local.stderr and "nowhere.py" in served.stderr


def test_a_second_start_leaves_the_first_serving(cs):
    search(cs, "add")
    pid = serving(cs)
    assert resident._Server(cs.root, cs.index_dir, 60).serve() == 0  # at once: the lock is held
    assert resident.server_pid(cs.root, cs.index_dir) == pid
    assert resident.ask(cs.root, cs.index_dir, {"op": "search", "queries": ["add"], "k": 3})["ok"]


def test_similar_takes_paths_as_in_process_dot_directories_included(cs):
    (cs.root / ".github").mkdir()
    (cs.root / ".github" / "tool.py").write_text("def add_numbers(a, b):\n    return a + b\n")
    assert cs.index().code == 0
    search(cs, "add")
    serving(cs)
    args = ["similar", ".github/tool.py:1", "--root", str(cs.root), "--index-dir", str(cs.index_dir), "--json"]
    served = cs.run(cs.argv(*args), env=env(cs))
    local = cs.run(cs.argv(*args, "--no-server"), env=env(cs))
    assert served.code == local.code == 0, served.stderr
    assert json.loads(served.stdout) == json.loads(local.stdout)


def test_a_malformed_request_is_refused_and_the_process_keeps_serving(cs):
    search(cs, "add")
    pid = serving(cs)
    import socket

    for junk in (b"{}\n", b"[1, 2]\n", b"not json\n", b'{"protocol": 1, "stamp": 5}\n'):
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(10)
        s.connect(str(resident.socket_path(cs.root, cs.index_dir)))
        s.sendall(junk)
        s.recv(1 << 16)  # an answer, or the connection closed
        s.close()
    assert resident.server_pid(cs.root, cs.index_dir) == pid
    assert resident.ask(cs.root, cs.index_dir, {"op": "search", "queries": ["add"], "k": 3})["ok"]
