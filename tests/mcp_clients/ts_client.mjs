// The TypeScript SDK client (what most desktop clients and editors build on) against
// `codesift mcp`: every scenario in one Node process, one JSON report on stdout.
//
//   node ts_client.mjs CONFIG.json
//
// CONFIG: {python, env, root, index_dir, slow: {root, index_dir, env}, traversal: [paths]}
// The SDK validates every tool result against the tool's outputSchema, error results
// included, so each error path here is also a check that the result is accepted.
import { readFileSync } from "node:fs";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { McpError } from "@modelcontextprotocol/sdk/types.js";

const cfg = JSON.parse(readFileSync(process.argv[2], "utf8"));
const results = [];
const TIMEOUT = { timeout: 60000 };

async function check(name, fn) {
  try {
    const detail = await fn();
    results.push({ name, ok: true, detail: detail ?? null });
  } catch (err) {
    results.push({ name, ok: false, detail: `${err?.name}: ${err?.message}`.slice(0, 2000) });
  }
}

function assert(cond, message) {
  if (!cond) throw new Error(message);
}

function toolError(result) {
  assert(result.isError === true, `expected an error result, got ${JSON.stringify(result).slice(0, 300)}`);
  assert(result.structuredContent === undefined, "an error result must not carry structuredContent");
  const err = JSON.parse(result.content[0].text).error;
  assert(err.code && err.message && err.action, `error without code/message/action: ${JSON.stringify(err)}`);
  return err;
}

async function expectMcpError(promise, code) {
  try {
    await promise;
  } catch (err) {
    assert(err instanceof McpError, `expected McpError, got ${err?.name}: ${err?.message}`);
    assert(err.code === code, `expected code ${code}, got ${err.code}: ${err.message}`);
    return err.message;
  }
  throw new Error(`expected McpError ${code}, the call succeeded`);
}

async function connect(root, indexDir, env, verbose = false) {
  const transport = new StdioClientTransport({
    command: cfg.python,
    args: ["-m", "codesift", ...(verbose ? ["-v"] : []), "mcp", root, "--index-dir", indexDir],
    env,
    stderr: "pipe",
  });
  let stderr = "";
  transport.stderr?.on("data", (chunk) => { stderr += chunk.toString(); });
  const client = new Client({ name: "codesift-ts-conformance", version: "1.0.0" });
  const protocolErrors = [];
  client.onerror = (err) => protocolErrors.push(String(err?.message ?? err));
  await client.connect(transport);
  return { client, transport, protocolErrors, stderr: () => stderr };
}

async function main() {
  const { client, transport, protocolErrors } = await connect(cfg.root, cfg.index_dir, cfg.env);

  await check("list_tools", async () => {
    const { tools } = await client.listTools();
    const names = tools.map((t) => t.name).sort();
    assert(JSON.stringify(names) === JSON.stringify(
      ["find_similar", "index_status", "job_status", "read_code", "reindex", "search_code"]), names.join(","));
    for (const t of tools) assert(t.outputSchema && t.description.length > 80, `${t.name}: schema/description`);
    return names;
  });

  await check("search_code", async () => {
    const r = await client.callTool({ name: "search_code", arguments: { query: "parse yaml configuration file", k: 3 } },
      undefined, TIMEOUT);
    assert(!r.isError, JSON.stringify(r).slice(0, 300));
    const s = r.structuredContent;
    assert(s.hits.length >= 1 && s.hits[0].path === "pkg/config_loader.py", JSON.stringify(s.hits[0]));
    assert(s.hits[0].repo && s.coverage.length === 1 && s.coverage[0].complete === true && s.complete === true,
      JSON.stringify(s.coverage));
    return s.hits[0].path;
  });

  await check("find_similar", async () => {
    const r = await client.callTool({ name: "find_similar", arguments: { path: "mod_00.py", line: 6, k: 3 } },
      undefined, TIMEOUT);
    assert(!r.isError && r.structuredContent.hits.length > 0, JSON.stringify(r).slice(0, 300));
  });

  await check("read_code", async () => {
    const r = await client.callTool({ name: "read_code", arguments: { path: "pkg/config_loader.py", start_line: 1,
      end_line: 2 } }, undefined, TIMEOUT);
    assert(!r.isError && r.structuredContent.content.startsWith("def load_yaml_config"), JSON.stringify(r));
  });

  await check("index_status", async () => {
    const r = await client.callTool({ name: "index_status", arguments: {} }, undefined, TIMEOUT);
    assert(!r.isError && r.structuredContent.exists && r.structuredContent.repos[0].files.indexed > 0,
      JSON.stringify(r).slice(0, 300));
  });

  await check("reindex_and_job_status", async () => {
    const r = await client.callTool({ name: "reindex", arguments: {} }, undefined, TIMEOUT);
    assert(!r.isError, JSON.stringify(r));
    const jobId = r.structuredContent.job_id;
    const deadline = Date.now() + 90000;
    let job;
    for (;;) {
      job = (await client.callTool({ name: "job_status", arguments: { job_id: jobId } }, undefined, TIMEOUT))
        .structuredContent;
      if (job.state !== "running") break;
      assert(Date.now() < deadline, "the job did not finish in 90 s");
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    assert(job.state === "succeeded" && job.summary.status === "ok" && job.progress, JSON.stringify(job));
    return job.state;
  });

  const bad = [
    ["search_code", {}, "invalid_arguments"],
    ["search_code", { query: "x", k: 0 }, "invalid_arguments"],
    ["search_code", { query: "x", mode: "fuzzy" }, "invalid_arguments"],
    ["search_code", { query: "x", colour: 1 }, "invalid_arguments"],
    ["search_code", { query: "x", repos: ["nope"] }, "unknown_repo"],
    ["find_similar", { path: "mod_00.py", line: 1000000 }, "not_indexed"],
    ["find_similar", { path: "mod_00.py" }, "invalid_arguments"],
    ["read_code", { path: "nope.py" }, "not_found"],
    ["read_code", { path: "pkg" }, "not_a_file"],
    ["read_code", { path: "mod_00.py", start_line: 1000000 }, "line_out_of_range"],
    ["read_code", { path: "mod_00.py", repo: "elsewhere" }, "unknown_repo"],
    ["index_status", { verbose: true }, "invalid_arguments"],
    ["reindex", { full: "yes" }, "invalid_arguments"],
    ["job_status", { job_id: "nope" }, "unknown_job"],
    ["job_status", {}, "invalid_arguments"],
  ];
  for (const [name, args, code] of bad) {
    await check(`bad_${name}_${JSON.stringify(args)}`, async () => {
      const err = toolError(await client.callTool({ name, arguments: args }, undefined, TIMEOUT));
      assert(err.code === code, `expected ${code}, got ${JSON.stringify(err)}`);
      return err.code;
    });
  }

  for (const path of cfg.traversal) {
    await check(`traversal_${path}`, async () => {
      const err = toolError(await client.callTool({ name: "read_code", arguments: { path } }, undefined, TIMEOUT));
      assert(err.code === "path_outside_root", JSON.stringify(err));
      const text = JSON.stringify(err).replaceAll(path, "");
      assert(!text.includes("top secret"), "leaked the file");
    });
  }

  await check("unknown_tool", async () => expectMcpError(
    client.callTool({ name: "no_such_tool", arguments: {} }, undefined, TIMEOUT), -32602));
  await check("bad_cursor", async () => expectMcpError(client.listTools({ cursor: "bogus" }), -32602));
  await check("bad_log_level", async () => expectMcpError(client.setLoggingLevel("loud"), -32602));
  await check("good_log_level", async () => { await client.setLoggingLevel("warning"); });

  await check("five_mb_line", async () => expectMcpError(
    client.callTool({ name: "search_code", arguments: { query: "x".repeat(5 * 1024 * 1024) } }, undefined, TIMEOUT),
    -32600));

  await check("garbage_then_alive", async () => {
    const stdin = transport._process.stdin;
    for (const raw of ["not json", '{"jsonrpc":"2.0","id":[1],"method":"ping"}',
      '{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}', '{"jsonrpc":"2.0","id":null,"method":"ping"}',
      '{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":{"x":1}}}',
      '[{"jsonrpc":"2.0","id":"b1","method":"ping"}]', "[]", '{"jsonrpc":"2.0","id":1.5,"method":"ping"}']) {
      stdin.write(raw + "\n");
    }
    await client.ping();
    const r = await client.callTool({ name: "index_status", arguments: {} }, undefined, TIMEOUT);
    assert(!r.isError, "server not answering after garbage");
    return protocolErrors.length;
  });

  await client.close();

  // A cancel mid-call: the query embedding sleeps (FAULT_DELAY_S), the client aborts.
  const slow = await connect(cfg.slow.root, cfg.slow.index_dir, cfg.slow.env, true);
  await check("cancel_mid_call", async () => {
    const ac = new AbortController();
    const pending = slow.client.callTool({ name: "search_code", arguments: { query: "scaled value", mode: "vector" } },
      undefined, { signal: ac.signal, timeout: 60000 });
    await slow.client.ping();  // the call has been read by the server
    ac.abort("changed my mind");
    let aborted = false;
    try { await pending; } catch { aborted = true; }
    assert(aborted, "the aborted call resolved");
    // The server goes on: a text search (no embedding) answers once the cancelled one has stopped.
    const r = await slow.client.callTool({ name: "search_code", arguments: { query: "scaled", mode: "text" } },
      undefined, TIMEOUT);
    assert(!r.isError && r.structuredContent.hits.length > 0, JSON.stringify(r).slice(0, 300));
    const deadline = Date.now() + 30000;
    while (!slow.stderr().includes("search_code stopped: cancelled by the client")) {
      assert(Date.now() < deadline, `no trace of the stop in stderr: ${slow.stderr().slice(-1500)}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  });
  await slow.client.close();

  if (cfg.http_url) {
    await check("http_tools", async () => {
      const c = new Client({ name: "codesift-ts-http", version: "1.0.0" });
      await c.connect(new StreamableHTTPClientTransport(new URL(cfg.http_url)));
      const r = await c.callTool({ name: "search_code", arguments: { query: "parse yaml configuration file" } },
        undefined, TIMEOUT);
      assert(!r.isError && r.structuredContent.hits.length > 0, JSON.stringify(r).slice(0, 300));
      const err = toolError(await c.callTool({ name: "read_code", arguments: { path: "../secret.txt" } },
        undefined, TIMEOUT));
      assert(err.code === "path_outside_root", JSON.stringify(err));
      await expectMcpError(c.callTool({ name: "no_such_tool", arguments: {} }, undefined, TIMEOUT), -32602);
      await c.close();
    });
    await check("http_cancel_mid_call", async () => {
      const c = new Client({ name: "codesift-ts-http", version: "1.0.0" });
      await c.connect(new StreamableHTTPClientTransport(new URL(cfg.slow_http_url)));
      const ac = new AbortController();
      const pending = c.callTool({ name: "search_code", arguments: { query: "scaled value", mode: "vector" } },
        undefined, { signal: ac.signal, timeout: 60000 });
      await c.ping();
      ac.abort("changed my mind");
      let aborted = false;
      try { await pending; } catch { aborted = true; }
      assert(aborted, "the aborted call resolved");
      const deadline = Date.now() + 30000;
      while (!readFileSync(cfg.slow_http_log, "utf8").includes("search_code stopped: cancelled by the client")) {
        assert(Date.now() < deadline, "no trace of the stop in the server's log");
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      const r = await c.callTool({ name: "search_code", arguments: { query: "scaled", mode: "text" } },
        undefined, TIMEOUT);
      assert(!r.isError && r.structuredContent.hits.length > 0, JSON.stringify(r).slice(0, 300));
      await c.close();
    });
    await check("http_foreign_origin_refused", async () => {
      const c = new Client({ name: "codesift-ts-http", version: "1.0.0" });
      const t = new StreamableHTTPClientTransport(new URL(cfg.http_url),
        { requestInit: { headers: { Origin: "http://evil.example" } } });
      let refused = null;
      try { await c.connect(t); } catch (err) { refused = err; }
      assert(refused, "a foreign Origin was accepted");
      assert(refused.code === 403 && String(refused.message).includes("Invalid Origin"),
        `refused, but not for its Origin: ${refused.code} ${refused.message}`);
      return `${refused.code} ${refused.message}`.slice(0, 200);
    });
  }
}

const timer = setTimeout(() => {
  results.push({ name: "overall_deadline", ok: false, detail: "the TS scenarios ran past 240 s" });
  process.stdout.write(JSON.stringify(results) + "\n");
  process.exit(2);
}, 240000);

main().then(() => {
  clearTimeout(timer);
  process.stdout.write(JSON.stringify(results) + "\n");
  process.exit(0);
}, (err) => {
  clearTimeout(timer);
  results.push({ name: "fatal", ok: false, detail: `${err?.name}: ${err?.message}\n${err?.stack}` });
  process.stdout.write(JSON.stringify(results) + "\n");
  process.exit(1);
});
