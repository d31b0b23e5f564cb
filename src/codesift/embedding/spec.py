"""Embedder specs with options: ``KIND[:BODY][?key=value&key=value]``.

A spec is the one string that names an embedder everywhere: the CLI builds it from
``--embedder`` and the embedder options (``--device``, ``--query-prefix``, ...), the
index stores it, and search loads the same string again. So options that change how
queries are embedded (a query prefix, a device, a server's batch limits) travel with
the index instead of having to be repeated on every ``codesift search``.

Values are URL-encoded, so a prefix may hold spaces, ``&`` or ``?``. A secret never
belongs in a spec (it is stored in the index in clear): API keys are named by the
environment variable that holds them (``key_env``), never given directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote

from codesift.errors import ConfigError


@dataclass(frozen=True)
class Spec:
    """``kind`` (lower-cased), ``body`` (after the first ``:``) and the options."""

    text: str
    kind: str
    body: str
    options: dict[str, str] = field(default_factory=dict)

    def option(self, key: str, default: str | None = None) -> str | None:
        return self.options.get(key, default)

    def check_options(self, allowed: tuple[str, ...]) -> None:
        unknown = sorted(set(self.options) - set(allowed))
        if unknown:
            valid = ", ".join(allowed) if allowed else "none"
            raise ConfigError(
                f"embedder {self.text!r}: unknown option(s) {', '.join(unknown)}; "
                f"valid options for {self.kind}: {valid}", stage="embed")

    def int_option(self, key: str, default: int | None, *, minimum: int = 1) -> int | None:
        raw = self.options.get(key)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise ConfigError(f"embedder {self.text!r}: option {key} must be an integer >= {minimum}, "
                              f"got {raw!r}", stage="embed")
        return value

    def float_option(self, key: str, default: float) -> float:
        raw = self.options.get(key)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            value = -1.0
        if not value > 0:
            raise ConfigError(f"embedder {self.text!r}: option {key} must be a number > 0, got {raw!r}",
                              stage="embed")
        return value


def parse_spec(text: str) -> Spec:
    """Split ``text``; raise :class:`ConfigError` on a malformed option list."""
    if not isinstance(text, str):
        raise ConfigError(f"embedder spec must be a string, got {text!r}", stage="embed")
    stripped = text.strip()
    base, sep, query = stripped.partition("?")
    options: dict[str, str] = {}
    if sep:
        try:
            pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
        except ValueError as exc:
            raise ConfigError(f"embedder {text!r}: malformed options {query!r} (expected key=value&...)",
                              stage="embed", cause=exc) from exc
        for key, value in pairs:
            if key in options:
                raise ConfigError(f"embedder {text!r}: option {key} given twice", stage="embed")
            options[key] = value
    head, _, body = base.partition(":")
    return Spec(stripped, head.strip().lower(), body.strip(), options)


def with_options(spec: str, **options: str | int | float | None) -> str:
    """``spec`` with ``options`` added (``None`` values are left out); used by the CLI.

    An option already in ``spec`` is replaced, so ``--device cuda`` wins over a
    ``?device=cpu`` typed into ``--embedder``.
    """
    parsed = parse_spec(spec)
    merged = dict(parsed.options)
    for key, value in options.items():
        if value is not None:
            merged[key] = str(value)
    base = parsed.text.partition("?")[0]
    if not merged:
        return base
    return base + "?" + "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in sorted(merged.items()))
