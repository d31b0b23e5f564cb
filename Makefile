PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test eval bench bench-peer clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade "pip>=23"
	$(BIN)/pip install --quiet -e '.[dev,ray]'
	touch $(STAMP)

demo: install
	$(BIN)/codesift index .
	$(BIN)/codesift search "retry an embedding batch with exponential backoff" -k 5

# The MCP client conformance tests drive real clients (TypeScript SDK, Inspector CLI),
# pinned by tests/mcp_clients/package-lock.json; they run offline once installed.
MCP_CLIENTS := tests/mcp_clients/node_modules/.package-lock.json

$(MCP_CLIENTS): tests/mcp_clients/package-lock.json
	timeout 900 npm ci --prefix tests/mcp_clients --ignore-scripts --no-audit --no-fund --loglevel=error
	touch $@

test: install $(MCP_CLIENTS)
	$(BIN)/python -m pytest -q -p no:cacheprovider

# EVAL=codesearch or EVAL=docstring runs one of the two; ARGS go to benchmarks/codesearch.py
EVAL ?= all
eval: install
	@if [ "$(EVAL)" != docstring ]; then $(BIN)/python benchmarks/codesearch.py $(ARGS) || exit 1; fi
	@if [ "$(EVAL)" != codesearch ]; then $(BIN)/python benchmarks/eval.py || exit 1; fi

bench: install
	$(BIN)/python benchmarks/run.py

bench-peer: install
	$(BIN)/python benchmarks/peer.py

clean:
	rm -rf $(VENV) .codesift
