"""Chunking per language: definitions become chunks named and kinded for the symbol table.

Each language has a small, realistic snippet; the chunks must carry the definitions'
qualified names (``symbol``) and kinds, and every non-blank line must stay covered, at a
budget that splits the file, at a tight one, and at one that holds the whole file.
"""

from __future__ import annotations

import textwrap

import pytest

from codesift.chunking import available_grammars, chunk_text, detect_language
from codesift.models import ChunkingResult
from codesift.text import line_slice, split_lines


def words(texts: list[str]) -> list[int]:
    """A deterministic stand-in tokenizer: whitespace-separated words, plus 2 specials."""
    return [len(t.split()) + 2 for t in texts]


def check(result: ChunkingResult, text: str, max_tokens: int) -> None:
    lines = split_lines(text)
    covered = [False] * (len(lines) + 2)
    prev_end = 0
    for chunk, n in zip(result.chunks, words([c.content for c in result.chunks])):
        assert chunk.start_line > prev_end, "chunks ordered, without overlap"
        prev_end = chunk.end_line
        assert chunk.content == line_slice(lines, chunk.start_line, chunk.end_line)
        assert chunk.content.strip()
        assert n <= max_tokens or chunk.start_line == chunk.end_line
        for i in range(chunk.start_line, chunk.end_line + 1):
            covered[i] = True
    for i, line in enumerate(lines, 1):
        if line.strip():
            assert covered[i], f"non-blank line {i} in no chunk: {line!r}"


def chunks_of(path: str, text: str, max_tokens: int) -> ChunkingResult:
    result = chunk_text(path, text, count_tokens=words, max_tokens=max_tokens)
    check(result, text, max_tokens)
    return result


def named(result: ChunkingResult) -> dict[str, str]:
    """symbol -> kind of each chunk; a chunk listing several definitions gives each."""
    out: dict[str, str] = {}
    for c in result.chunks:
        for sym in c.symbol.split(", "):
            if sym:
                out.setdefault(sym, c.kind)
    return out


# language -> (path, source, budget that splits it, {symbol: kind} that must appear)
CASES: dict[str, tuple[str, str, int, dict[str, str]]] = {
    "kotlin": ("src/main/kotlin/net/Client.kt", '''
        package demo.net

        import kotlinx.coroutines.flow.Flow

        /** Sends messages to one host. */
        class Client(private val host: String) {
            fun send(message: String): Boolean {
                val bytes = message.toByteArray()
                return transport.write(host, bytes) == bytes.size
            }

            companion object {
                fun create(host: String): Client = Client(host)
            }
        }

        interface Shape {
            fun area(): Double
        }

        enum class Color { RED, GREEN }

        object Registry {
            val clients = mutableListOf<Client>()
        }

        typealias Handler = (String) -> Unit

        fun String.shout(): String = uppercase() + "!"
        ''', 20, {"Client": "class", "Client.send": "method", "Shape": "interface", "Color": "enum",
                  "Registry": "class", "Handler": "type", "String.shout": "function"}),
    "scala": ("core/src/main/scala/cats/Show.scala", '''
        package cats

        import scala.annotation.tailrec

        /** A type class for rendering values. */
        trait Show[A] {
          def show(a: A): String
        }

        object Show {
          def apply[A](implicit s: Show[A]): Show[A] = s

          def fromToString[A]: Show[A] = new Show[A] {
            def show(a: A): String = a.toString
          }
        }

        final case class Box[A](value: A) extends AnyVal

        enum Color { case Red, Green }

        type Id[A] = A

        def twice(x: Int): Int = x * 2
        ''', 20, {"Show": "trait", "Show.apply": "method", "Box": "class", "Color": "enum", "Id": "type",
                  "twice": "function"}),
    "swift": ("Source/Core/Session.swift", '''
        import Foundation

        /// Creates and manages requests.
        open class Session {
            public let rootQueue: DispatchQueue

            public func request(_ url: URL) -> DataRequest {
                let request = DataRequest(url: url)
                return perform(request)
            }

            init(rootQueue: DispatchQueue) {
                self.rootQueue = rootQueue
            }
        }

        public protocol RequestAdapter {
            func adapt(_ urlRequest: URLRequest) throws -> URLRequest
        }

        struct Point { var x: Int; var y: Int }

        enum AFError: Error {
            case invalidURL(url: URL)
        }

        extension Session: CustomStringConvertible {
            public var description: String { "Session" }
        }

        func topLevel() -> Int { 42 }
        ''', 20, {"Session": "class", "Session.request": "method", "RequestAdapter": "interface",
                  "Point": "struct", "AFError": "enum", "topLevel": "function"}),
    "elixir": ("lib/ecto/repo.ex", '''
        defmodule Ecto.Repo do
          @moduledoc """
          Defines a repository.
          """
          alias Ecto.Query

          @doc "Fetches a single struct by its primary key."
          @spec get(module, term) :: term
          def get(repo, id) when is_integer(id) do
            repo.one(Query.from(id))
          end

          defp normalize(opts), do: Keyword.merge(defaults(), opts)

          defmacro __using__(opts) do
            quote do
              @otp_app unquote(opts)[:otp_app]
            end
          end

          defmodule Config do
            defstruct [:adapter, :otp_app]
          end
        end

        defprotocol Size do
          def size(data)
        end

        defimpl Size, for: Map do
          def size(map), do: map_size(map)
        end
        ''', 20, {"Ecto.Repo": "module", "Ecto.Repo.get": "function", "Ecto.Repo.normalize": "function",
                  "Ecto.Repo.__using__": "macro", "Ecto.Repo.Config": "module", "Size": "interface",
                  "Size.Map": "impl"}),
    "haskell": ("src/Data/Stack.hs", '''
        module Data.Stack (Stack, push, size) where

        import qualified Data.Map as M

        -- | A last-in, first-out stack.
        data Stack a = Empty | Cons a (Stack a)
          deriving (Show, Eq)

        newtype Depth = Depth Int

        type Name = String

        class Container f where
          empty :: f a
          insert :: a -> f a -> f a

        instance Container Stack where
          empty = Empty
          insert = Cons

        -- | Push an element.
        push :: a -> Stack a -> Stack a
        push x s = Cons x s

        size :: Stack a -> Int
        size Empty = 0
        size (Cons _ rest) = 1 + size rest
        ''', 20, {"Stack": "type", "Depth": "type", "Name": "type", "Container": "class",
                  "Container Stack": "impl", "push": "function", "size": "function"}),
    "lua": ("lua/net/client.lua", '''
        -- A small HTTP client.
        local M = {}

        function M.new(host, port)
          local self = setmetatable({}, { __index = M })
          self.host = host
          self.port = port or 80
          return self
        end

        function M.Client:send(message)
          local ok, err = self.socket:write(message)
          return ok, err
        end

        local function encode(value)
          return tostring(value)
        end

        M.handler = function(request)
          return encode(request.body)
        end

        return M
        ''', 20, {"M.new": "function", "M.Client.send": "method", "encode": "function",
                  "M.handler": "function"}),
    "zig": ("src/point.zig", '''
        const std = @import("std");

        /// A point in the plane.
        pub const Point = struct {
            x: i32,
            y: i32,

            pub fn add(self: Point, other: Point) Point {
                return .{ .x = self.x + other.x, .y = self.y + other.y };
            }
        };

        const Color = enum { red, green, blue };

        pub fn main() !void {
            const p = Point{ .x = 1, .y = 2 };
            std.debug.print("{}", .{p.add(p)});
        }

        test "add adds" {
            try std.testing.expect(true);
        }
        ''', 20, {"Point": "struct", "Point.add": "method", "Color": "enum", "main": "function",
                  "test add adds": "test"}),
    "dart": ("lib/src/counter.dart", '''
        import 'package:flutter/widgets.dart';

        /// Shows a count.
        class Counter extends StatelessWidget {
          final int count;
          const Counter(this.count);

          @override
          Widget build(BuildContext context) {
            final text = 'count: $count';
            return Text(text, textDirection: TextDirection.ltr);
          }
        }

        mixin Logging {
          void log(String message) => print(message);
        }

        enum Color { red, green }

        typedef Callback = void Function(int value);

        void main() {
          runApp(const Counter(1));
        }
        ''', 20, {"Counter": "class", "Counter.build": "method", "Logging": "trait", "Color": "enum",
                  "Callback": "type", "main": "function"}),
    "yaml": (".github/workflows/ci.yml", '''
        # Continuous integration
        name: ci
        on:
          push:
            branches: [main]
          pull_request:
        jobs:
          test:
            runs-on: ubuntu-latest
            steps:
              - uses: actions/checkout@v4
              - run: cargo test --all-features
          lint:
            runs-on: ubuntu-latest
            steps:
              - run: cargo clippy -- -D warnings
        ''', 20, {"on": "section", "jobs.test": "section", "jobs.lint": "section"}),
    "toml": ("Cargo.toml", '''
        [package]
        name = "serde"
        version = "1.0.200"
        edition = "2021"

        [dependencies]
        serde_derive = { version = "1", optional = true }

        [features]
        default = ["std"]
        std = []

        [[bin]]
        name = "tool"
        path = "src/bin/tool.rs"
        ''', 12, {"package": "section", "dependencies": "section", "features": "section", "bin": "section"}),
    "json": ("package.json", '''
        {
          "name": "vitest",
          "version": "3.0.0",
          "scripts": {
            "build": "rollup -c",
            "test": "vitest run"
          },
          "dependencies": {
            "chai": "^5.0.0",
            "tinypool": "^1.0.0"
          }
        }
        ''', 12, {"scripts": "section", "dependencies": "section"}),
    "sql": ("db/schema.sql", '''
        -- Accounts of the application.
        CREATE TABLE users (
          id INTEGER PRIMARY KEY,
          email TEXT NOT NULL UNIQUE,
          created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
        );

        CREATE VIEW active_users AS SELECT id, email FROM users WHERE created_at > now() - interval '30 days';

        CREATE INDEX users_email_idx ON users (email);

        CREATE FUNCTION add_one(x integer) RETURNS integer AS $$ SELECT x + 1 $$ LANGUAGE sql;
        ''', 20, {"users": "table", "active_users": "view", "users_email_idx": "index", "add_one": "function"}),
    "html": ("docs/index.html", '''
        <!DOCTYPE html>
        <html>
        <head>
          <title>codesift</title>
        </head>
        <body>
          <nav id="top">
            <a href="#install">Install</a>
          </nav>
          <section id="install">
            <h2>Install</h2>
            <p>Run pip install codesift and then index your repository.</p>
          </section>
        </body>
        </html>
        ''', 14, {"nav#top": "section", "section#install": "section"}),
    "css": ("static/site.css", '''
        /* Base layout */
        body, html {
          margin: 0;
          font-family: sans-serif;
        }

        .button:hover > a {
          color: red;
        }

        @media (max-width: 600px) {
          .sidebar { display: none; }
        }
        ''', 10, {"body,html": "rule", ".button:hover > a": "rule", "@media (max-width: 600px)": "section"}),
    "dockerfile": ("Dockerfile", '''
        # syntax=docker/dockerfile:1
        FROM golang:1.22 AS build
        WORKDIR /src
        COPY go.mod go.sum ./
        RUN go mod download
        COPY . .
        RUN go build -o /out/app \\
            ./cmd/app

        # Runtime image
        FROM gcr.io/distroless/base AS runtime
        COPY --from=build /out/app /app
        ENTRYPOINT ["/app"]
        ''', 20, {"build": "stage", "runtime": "stage"}),
    "make": ("Makefile", '''
        CC ?= cc
        SRCS := $(wildcard src/*.c)

        .PHONY: all test clean

        all: app

        app: $(SRCS)
        \t$(CC) -o $@ $^

        test: app
        \t./scripts/run-tests.sh

        clean:
        \trm -f app
        ''', 10, {"all": "rule", "app": "rule", "test": "rule", "clean": "rule"}),
    "hcl": ("infra/main.tf", '''
        terraform {
          required_version = ">= 1.5"
        }

        resource "aws_s3_bucket" "logs" {
          bucket = "my-logs"
          tags = {
            team = "platform"
          }
        }

        variable "region" {
          default = "us-east-1"
        }

        module "network" {
          source = "./modules/network"
        }
        ''', 12, {"terraform": "block", "aws_s3_bucket.logs": "block", "var.region": "block",
                  "module.network": "block"}),
    "starlark": ("absl/strings/BUILD.bazel", '''
        load("@rules_cc//cc:defs.bzl", "cc_library", "cc_test")

        package(default_visibility = ["//visibility:public"])

        cc_library(
            name = "strings",
            srcs = ["str_cat.cc", "str_split.cc"],
            hdrs = ["str_cat.h", "str_split.h"],
            deps = [":internal"],
        )

        cc_test(
            name = "str_cat_test",
            srcs = ["str_cat_test.cc"],
        )
        ''', 12, {"strings": "rule", "str_cat_test": "rule"}),
    # the languages that were there first: the metadata gaps the symbol table needs filled
    "go": ("server/server.go", '''
        package server

        type Server struct {
            addr string
        }

        type Handler interface {
            Serve(req string) error
        }

        func (s *Server) Start() error {
            return listen(s.addr)
        }
        ''', 12, {"Server": "struct", "Handler": "interface", "Server.Start": "method"}),
    "rust": ("src/point.rs", '''
        use std::fmt;

        pub struct Point {
            x: i32,
            y: i32,
        }

        impl fmt::Display for Point {
            fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "({}, {})", self.x, self.y)
            }
        }

        impl Point {
            pub fn origin() -> Point {
                Point { x: 0, y: 0 }
            }
        }

        pub type Pair = (Point, Point);
        ''', 14, {"Point": "struct", "Point.fmt": "method", "Point.origin": "method", "Pair": "type"}),
    "cpp": ("absl/container/vector.h", '''
        #include <vector>

        namespace absl {

        template <typename T>
        class InlinedVector {
         public:
          void push_back(const T& v) {
            storage_.push_back(v);
          }
          int size() const;

         private:
          std::vector<T> storage_;
        };

        template <typename T>
        int InlinedVector<T>::size() const {
          return static_cast<int>(storage_.size());
        }

        }  // namespace absl
        ''', 14, {"InlinedVector": "class", "InlinedVector.size": "method"}),
    "typescript": ("src/shapes.ts", '''
        export interface Shape {
          area(): number;
        }

        export type Id = string | number;

        export enum Color { Red, Green }

        export class Circle implements Shape {
          constructor(private r: number) {}
          area(): number { return Math.PI * this.r * this.r; }
        }
        ''', 10, {"Shape": "interface", "Id": "type", "Color": "enum", "Circle": "class"}),
}


@pytest.mark.parametrize("lang", sorted(CASES))
def test_definitions_become_named_chunks(lang: str) -> None:
    path, source, budget, expected = CASES[lang]
    text = textwrap.dedent(source).lstrip("\n")
    if not path.endswith(".h"):  # a header's language is told from its content
        assert detect_language(path) == lang
    result = chunks_of(path, text, budget)
    assert result.language == lang
    assert result.note is None or "used line windows" not in result.note
    got = named(result)
    missing = {s: k for s, k in expected.items() if got.get(s) != k}
    assert not missing, (missing, [(c.start_line, c.end_line, c.kind, c.symbol) for c in result.chunks])
    assert "window" not in {c.kind for c in result.chunks}
    # A tight budget splits inside definitions; a huge one keeps the file whole: lines stay covered.
    chunks_of(path, text, 6)
    whole = chunks_of(path, text, 100_000)
    assert 1 <= len(whole.chunks) <= len(result.chunks)


def test_every_grammar_loads() -> None:
    failed = {lang: err for lang, err in available_grammars().items() if err is not None}
    assert not failed


@pytest.mark.parametrize("path,lang", [
    ("build.gradle.kts", "kotlin"), ("Main.kt", "kotlin"), ("build.sbt", "scala"), ("script.sc", "scala"),
    ("Package.swift", "swift"), ("mix.exs", "elixir"), ("lib/a.ex", "elixir"), ("Main.hs", "haskell"),
    ("init.lua", "lua"), ("build.zig", "zig"), ("main.dart", "dart"), ("a.yaml", "yaml"), ("a.yml", "yaml"),
    ("pyproject.toml", "toml"), ("tsconfig.json", "json"), ("schema.sql", "sql"), ("index.htm", "html"),
    ("site.css", "css"), ("Dockerfile", "dockerfile"), ("Dockerfile.prod", "dockerfile"),
    ("api.dockerfile", "dockerfile"), ("Containerfile", "dockerfile"), ("Makefile", "make"),
    ("GNUmakefile", "make"), ("rules.mk", "make"), ("main.tf", "hcl"), ("prod.tfvars", "hcl"),
    ("config.hcl", "hcl"), ("notes.txt", "text"), ("BUILD.bazel", "starlark"), ("defs.bzl", "starlark"),
    ("build", "text"), ("syntax/dockerfile.vim", "text"), ("Makefile.am", "make"),
])
def test_file_names_map_to_languages(path: str, lang: str) -> None:
    assert detect_language(path) == lang


def test_cpp_header_is_parsed_as_cpp() -> None:
    text = "#pragma once\n\nnamespace geo {\n\nclass Shape {\n public:\n  virtual double area() const = 0;\n};\n\n}\n"
    result = chunks_of("include/geo/shape.h", text, 100)
    assert result.language == "cpp"
    plain_c = "#ifndef UV_H\n#define UV_H\n\nstruct uv_loop_s {\n  int active;\n};\n\nint uv_run(void);\n#endif\n"
    assert chunks_of("include/uv.h", plain_c, 100).language == "c"


def test_small_definitions_sharing_a_chunk_are_all_listed() -> None:
    text = "def alpha():\n    return 1\n\ndef beta():\n    return 2\n\ndef gamma():\n    return 3\n"
    result = chunks_of("m.py", text, 1000)
    assert len(result.chunks) == 1
    assert result.chunks[0].symbol == "alpha, beta, gamma"
    assert result.chunks[0].kind == "function"


def test_long_doc_comment_is_named_after_its_definition() -> None:
    doc = "".join(f"/// Line {i} of a long explanation of what this function does and why.\n" for i in range(12))
    text = "use std::io;\n\n" + doc + "pub fn explained(x: i32) -> i32 {\n    x + 1\n}\n"
    result = chunks_of("src/lib.rs", text, 60)
    assert {c.symbol for c in result.chunks if c.start_line > 2} == {"explained"}


def test_deeply_nested_json_keeps_the_innermost_names() -> None:
    inner = '"leaf": {"value": 1, "other": 2}'
    for i in range(30):
        inner = f'"level_number_{i}": {{\n{inner}\n}}'
    text = "{\n" + inner + "\n}\n"
    result = chunks_of("deep.json", text, 8)
    assert all(len(c.symbol) <= 100 for c in result.chunks)
    leaf = next(c for c in result.chunks if '"leaf"' in c.content)
    assert leaf.symbol.endswith("level_number_1.level_number_0"), leaf.symbol


def test_dart_function_split_keeps_its_name() -> None:
    body = "".join(f"  final v{i} = compute({i}) + other({i});\n" for i in range(40))
    text = f"import 'dart:math';\n\nint huge(int x) {{\n{body}  return x;\n}}\n"
    result = chunks_of("lib/huge.dart", text, 40)
    huge = [c for c in result.chunks if c.symbol == "huge"]
    assert len(huge) > 2 and all(c.kind == "function" for c in huge)
    assert huge[0].start_line <= 3  # the signature is in the first piece of the body


def test_block_doc_comment_longer_than_a_chunk_is_named_after_its_definition() -> None:
    doc = "/**\n" + "".join(f" * Line {i} of the documentation of this operator and its caveats.\n"
                            for i in range(20)) + " */\n"
    text = "package demo\n\n" + doc + "fun Flow<Int>.none(): Boolean = !any()\n\nval x = 1\n"
    result = chunks_of("src/Logic.kt", text, 40)
    doc_chunks = [c for c in result.chunks if 3 <= c.start_line <= 24]
    assert len(doc_chunks) > 1
    assert {c.symbol for c in doc_chunks} == {"Flow.none"}, [(c.start_line, c.symbol) for c in result.chunks]


def test_c_macros_are_definitions() -> None:
    text = ("#ifndef UTIL_H\n#define UTIL_H\n\n#define MAX_ITEMS 64\n\n"
            "#define CHECK(cond) \\\n  do { if (!(cond)) abort(); } while (0)\n\nint util_run(void);\n\n#endif\n")
    got = named(chunks_of("src/util.h", text, 12))
    assert got.get("MAX_ITEMS") == "macro" and got.get("CHECK") == "macro", got


def test_module_level_constants_are_named() -> None:
    py = ("import os\n\nMAX_RETRIES = 3\n\nSupported = Union[int, str]\n\n\n"
          "def run():\n    local = 1\n    return local\n")
    got = named(chunks_of("pkg/settings.py", py, 8))
    assert got.get("MAX_RETRIES") == "variable" and got.get("Supported") == "variable", got
    assert "local" not in got and "run.local" not in got
    ts = ('const fs = require("fs");\n\nexport const LIMIT = 10;\n\n'
          "function g() {\n  const inner = 1;\n  return inner;\n}\n")
    got = named(chunks_of("src/limits.ts", ts, 8))
    assert got.get("LIMIT") == "variable" and "fs" not in got and "inner" not in got and "g.inner" not in got, got
    rs = "use std::io;\n\npub const MAX: usize = 64;\n\nstatic NAME: &str = \"x\";\n\nfn main() {}\n"
    got = named(chunks_of("src/main.rs", rs, 8))
    assert got.get("MAX") == "constant" and got.get("NAME") == "constant", got


def test_commented_data_keys_share_chunks() -> None:
    keys = "".join(f"# Enables feature number {i} of the crate.\nfeature_{i} = [\"dep/f{i}\"]\n\n" for i in range(8))
    text = "[package]\nname = \"demo\"\n\n[features]\n" + keys
    result = chunks_of("Cargo.toml", text, 60)
    features = [c for c in result.chunks if c.symbol.startswith("features.")]
    assert len(features) < 8, [(c.start_line, c.symbol) for c in result.chunks]
    assert "features.feature_0" in named(result) and "features.feature_7" in named(result)


def test_named_yaml_list_items_are_sections() -> None:
    text = textwrap.dedent("""\
        jobs:
          test:
            steps:
              - uses: actions/checkout@v4
              - name: Run clippy
                run: cargo clippy --all-targets -- -D warnings
              - name: "Run tests"
                run: |
                  cargo test --all-features
                  cargo test --no-default-features
        """)
    got = named(chunks_of(".github/workflows/ci.yml", text, 14))
    assert got.get("jobs.test.steps.Run clippy") == "section", got
    assert got.get("jobs.test.steps.Run tests") == "section", got
