"""``hedger matrix``: the hedge-ratio matrix of every ordered pair of N symbols over a price file.

Reads a wide bar CSV or tick files (:func:`hedger.research.prices.load_prices`), runs the N (N - 1)
pair filters in one compiled pass (:class:`hedger.engine.matrix.MatrixFilter`) and writes the
matrix at every bar, or only the last (``--last``):

- JSON Lines (``--format jsonl``, the default): one object per bar with the keys of the
  daemon's ``matrix`` event (:class:`hedger.core.events.MatrixEvent`) plus the bar's ``label``:
  ``{"type": "matrix", "version", "seq" (the bar's number, from 1), "ts", "label", "symbols",
  "beta", "alpha", "beta_std", "zscore", "warm", "stale"}``, each matrix N x N nested lists,
  row = Y (the hedged), column = X (the hedge), ``null`` on the diagonal and wherever a number
  does not exist (the z-score of a bar without both prices); ``stale`` lists the symbols
  without a usable price on the bar (their pairs only predicted);
- CSV (``--format csv``): long form, one row per bar and ordered pair,
  ``label,y,x,beta,alpha,beta_std,zscore,warm`` (empty cells for missing numbers).

``--plot matrix.png`` draws the final beta matrix as an annotated heatmap (matplotlib, the
``hedger[plot]`` extra). A one-line summary goes to stderr, with a progress line on a terminal.
"""

from __future__ import annotations

import argparse
import sys
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import BinaryIO, NamedTuple

import numpy as np
import orjson

from hedger.cli.options import (
    PLOT_SUFFIXES,
    TS_UNITS,
    add_date_format,
    add_drop_repeats,
    add_mode,
    check_bar,
    output_path,
    write_to,
)
from hedger.core.events import MatrixEvent
from hedger.engine import FilterParams, InputMode, OlsWarmupInit
from hedger.engine.linalg import FloatArray
from hedger.engine.matrix import MatrixBars, MatrixFilter, clean_prices, load_kernel
from hedger.errors import ConfigError, DataFileError
from hedger.research.matrix_plot import plot_beta_matrix
from hedger.research.plots import figure_class
from hedger.research.prices import PriceTable, load_prices

FORMATS = ("jsonl", "csv")
CSV_HEADER = ("label", "y", "x", "beta", "alpha", "beta_std", "zscore", "warm")
_BETA_UNITS = {
    InputMode.LEVELS: "beta: shares of X per share of Y",
    InputMode.LOG: "beta: elasticity of Y to X (log prices)",
    InputMode.CHANGES: "beta: shares of X per share of Y (price changes)",
    InputMode.RETURNS: "beta: return of Y per return of X",
}


HELP = "hedge ratios of every ordered pair of N symbols over a price file"
DESCRIPTION = (
    "Run every ordered pair Y/X of the file's symbols (or --symbols) through the filter "
    "bank in one pass and write the matrices of beta, alpha, beta standard error and "
    "z-score at every bar (or only the last) as JSON Lines or long-form CSV."
)


def add_arguments(matrix: argparse.ArgumentParser) -> None:
    """The options of ``hedger matrix``."""
    matrix.add_argument("file", type=Path, metavar="FILE", help="wide bar CSV or tick file")
    matrix.add_argument(
        "--symbols", help="comma-separated symbols, in matrix order (default: every column)"
    )
    matrix.add_argument("--last", action="store_true", help="write only the last bar's matrix")
    matrix.add_argument(
        "--format", choices=FORMATS, default="jsonl", help="jsonl (default) or csv (long form)"
    )
    matrix.add_argument("--out", type=Path, help="write here (default: stdout)")
    matrix.add_argument(
        "--plot", type=Path, metavar="PNG", help="draw the final beta matrix as a heatmap"
    )
    add_mode(matrix)
    matrix.add_argument(
        "--delta", type=float, default=1e-4, help="state noise, Q = delta/(1-delta) I (1e-4)"
    )
    matrix.add_argument(
        "--obs-cov", type=float, default=1e-3, help="observation noise R (its start if adaptive)"
    )
    matrix.add_argument(
        "--fixed-r", action="store_true", help="keep R fixed (default: learn it from the data)"
    )
    matrix.add_argument("--warmup", type=int, default=20, help="OLS warm-up observations (20)")
    matrix.add_argument("--bar", default="1d", help="bar length for tick files (default 1d)")
    add_date_format(matrix)
    add_drop_repeats(matrix)
    matrix.add_argument(
        "--ts-unit",
        choices=TS_UNITS,
        default="auto",
        help="unit of numeric timestamps in tick files (default: detected)",
    )


def filter_params_from(args: argparse.Namespace) -> FilterParams:
    """The pair filters' parameters from the command line (validated)."""
    return FilterParams(
        mode=InputMode(args.mode),
        delta=args.delta,
        obs_cov=args.obs_cov,
        adaptive_r=None if args.fixed_r else 0.99,
        init=OlsWarmupInit(n_obs=args.warmup),
    )


def _symbols(text: str | None) -> list[str] | None:
    if text is None:
        return None
    symbols = [part.strip() for part in text.split(",") if part.strip()]
    if not symbols:
        raise ConfigError("symbols", f"no symbol in {text!r}")
    return symbols


def run(args: argparse.Namespace) -> int:
    """Run ``hedger matrix``; returns the exit status (errors raise :class:`HedgerError`)."""
    params = filter_params_from(args)
    wanted = _symbols(args.symbols)
    output_path("out", args.out)
    output_path("plot", args.plot, PLOT_SUFFIXES)
    if args.plot is not None:
        figure_class()
    table = load_prices(
        args.file,
        bar=check_bar(args.bar),
        ts_unit=args.ts_unit,
        date_format=args.date_format,
        drop_repeats=args.drop_repeats,
    )
    table.require_rows(args.file)
    note = table.rejects_note()
    if note is not None:
        print(f"hedger matrix: {args.file}: {note}", file=sys.stderr)
    if wanted is not None:
        table = table.select(wanted)
    if len(table.symbols) < 2:
        raise ConfigError("symbols", f"a matrix needs at least 2 symbols, got {len(table.symbols)}")
    if table.prices.shape[0] == 0:
        raise DataFileError(str(args.file), "no bars with prices")
    matrix = MatrixFilter(len(table.symbols), params)
    summary = write_to(args.out, lambda out: _write(matrix, table, args, out))
    if args.plot is not None:
        label = table.labels[-1]
        title = f"Hedge ratios Y/X at {label} ({params.mode.value}, delta {params.delta:g})"
        plot_beta_matrix(
            args.plot,
            np.array(matrix.beta),
            table.symbols,
            title=title,
            units=_BETA_UNITS[params.mode],
            warm=matrix.warm,
        )
    print(summary, file=sys.stderr)
    return 0


def _write(matrix: MatrixFilter, table: PriceTable, args: argparse.Namespace, out: BinaryIO) -> str:
    """Filter the table, writing records to ``out``; returns the summary line."""
    writer: _Writer
    if args.format == "jsonl":
        writer = _JsonlWriter(out, table, matrix.mode)
    else:
        writer = _CsvWriter(out, table)
    progress = _progress if sys.stderr.isatty() else None
    load_kernel()
    n_bars = table.prices.shape[0]
    started = time.perf_counter()
    filtering = 0.0
    if args.last:
        matrix.run(table.prices)
        filtering = time.perf_counter() - started
        last = _Bar(
            np.array(matrix.beta), np.array(matrix.alpha), matrix.beta_se, np.array(matrix.zscore)
        )
        writer.write_bar(n_bars - 1, last, matrix.warm)
        records = 1
    else:
        chunks = matrix.run_bars(table.prices)
        records = 0
        while True:
            tick = time.perf_counter()
            chunk = next(chunks, None)
            filtering += time.perf_counter() - tick
            if chunk is None:
                break
            writer.write_chunk(chunk)
            records += chunk.beta.shape[0]
            if progress is not None:
                progress(records, n_bars)
    writer.finish()
    if progress is not None:
        sys.stderr.write("\n")
    elapsed = time.perf_counter() - started
    updates = n_bars * matrix.n_pairs
    rate = updates / filtering if filtering > 0 else float("inf")
    return (
        f"matrix: {n_bars:,} bars x {matrix.n_pairs:,} pairs ({matrix.n_symbols} symbols, "
        f"{matrix.mode.value}) = {updates:,} pair-updates, {rate:,.0f} pair-updates/s in the "
        f"filter; {records:,} bar(s) written as {args.format} in {elapsed:.2f} s"
    )


def _progress(done: int, total: int) -> None:
    sys.stderr.write(f"\rmatrix: {done:,}/{total:,} bars ")
    sys.stderr.flush()


class _Bar(NamedTuple):
    """One bar's float matrices (N, N) each, in this order (the CSV's column order)."""

    beta: FloatArray
    alpha: FloatArray
    beta_se: FloatArray
    zscore: FloatArray


class _Writer(ABC):
    """What the two output formats share: a chunk of recorded bars is written bar by bar
    (:meth:`write_bar`, one per format), and :meth:`finish` flushes."""

    def __init__(self, out: BinaryIO, table: PriceTable) -> None:
        self._out = out
        self._table = table

    def write_chunk(self, chunk: MatrixBars) -> None:
        for i in range(chunk.beta.shape[0]):
            bar = _Bar(chunk.beta[i], chunk.alpha[i], chunk.beta_se[i], chunk.zscore[i])
            self.write_bar(chunk.start + i, bar, chunk.warm[i])

    @abstractmethod
    def write_bar(self, bar: int, values: _Bar, warm: np.ndarray) -> None:
        """Write bar ``bar``'s matrices (N, N) each; ``warm`` (N, N) bool."""

    def finish(self) -> None:
        self._out.flush()


class _JsonlWriter(_Writer):
    """One JSON object per bar (orjson; NaN is written as null): the keys of the daemon's
    :class:`~hedger.core.events.MatrixEvent` JSON, plus ``label`` after ``ts``."""

    def __init__(self, out: BinaryIO, table: PriceTable, mode: InputMode) -> None:
        super().__init__(out, table)
        self._symbols = table.symbols
        self._missing = np.isnan(clean_prices(table.prices, mode))

    def write_bar(self, bar: int, values: _Bar, warm: np.ndarray) -> None:
        symbols = self._symbols
        event = MatrixEvent(
            seq=bar + 1,
            ts=int(self._table.ts[bar]),
            symbols=symbols,
            beta=values.beta,
            alpha=values.alpha,
            beta_std=values.beta_se,
            zscore=values.zscore,
            warm=warm,
            stale=tuple(symbols[i] for i in np.flatnonzero(self._missing[bar])),
        )
        fields = event.to_dict()
        record = {key: fields.pop(key) for key in ("type", "version", "seq", "ts")}
        record["label"] = self._table.labels[bar]
        record.update(fields)
        self._out.write(orjson.dumps(record, option=orjson.OPT_SERIALIZE_NUMPY))
        self._out.write(b"\n")


class _CsvWriter(_Writer):
    """Long form: one row per bar and ordered pair, in the flat pair order (RFC 4180 quoting
    of labels and symbols; floats in their shortest round-trip form; empty cells for NaN)."""

    def __init__(self, out: BinaryIO, table: PriceTable) -> None:
        super().__init__(out, table)
        self._out.write((",".join(CSV_HEADER) + "\n").encode())
        n = len(table.symbols)
        self._offdiag = ~np.eye(n, dtype=bool)
        iy, ix = np.nonzero(self._offdiag)
        names = [_csv_field(symbol) for symbol in table.symbols]
        self._pairs = [f"{names[y]},{names[x]}" for y, x in zip(iy, ix, strict=True)]

    def write_bar(self, bar: int, values: _Bar, warm: np.ndarray) -> None:
        mask = self._offdiag
        label = _csv_field(self._table.labels[bar])
        heads = [f"{label},{pair}" for pair in self._pairs]
        columns = [_cells(m[mask]) for m in values]
        flags = ["true" if w else "false" for w in warm[mask].tolist()]
        lines = map(",".join, zip(heads, *columns, flags, strict=True))
        self._out.write(("\n".join(lines) + "\n").encode())


def _csv_field(text: str) -> str:
    """``text`` as one CSV cell, quoted when it holds a comma, a quote or a line break."""
    if any(ch in text for ch in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def _cells(values: FloatArray) -> list[str]:
    """Floats as CSV cells, in their shortest round-trip form (orjson's, which is much faster
    than ``repr``), empty where NaN."""
    text = orjson.dumps(np.ascontiguousarray(values), option=orjson.OPT_SERIALIZE_NUMPY)
    return text[1:-1].decode().replace("null", "").split(",")
