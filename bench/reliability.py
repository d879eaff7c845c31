"""Probes of hedger against data nobody cleaned, with the figures ``docs/reliability.md``
reports. Run as ``python bench/reliability.py`` (about a minute: the bad-print probes below);
``--all`` also runs the other probes, each its own script, in turn (``bench/skew.py``,
``bench/ws_limits.py``, ``bench/probe_startup_shutdown.py``, ``bench/durability.py``:
several minutes); ``--out FILE``
writes the markdown to FILE as well as to stdout.

Bad prints: a 300k-tick file of the seeded synthetic pair (``bench/bench_replay.py``'s
generator, 1 s bars) replayed clean, then with one YYY print mid-file (the last of its bar)
10x, 100x and 1/100 off, with the innovation gate off and at its default; the final beta of each
against the clean run's. False rejections: the share of warm bars the gate refuses on the
shipped real daily data and on four hours of the synthetic market, at thresholds 4 to 8.
"""

from __future__ import annotations

import io
import itertools
import sys
import tempfile
from pathlib import Path

import numpy as np
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_replay import ensure_files

from feeds.synthetic import SyntheticMarket, SyntheticSpec
from hedger import FilterParams, HedgeFilter, InputMode
from hedger.config.pipeline import DEFAULT_OUTLIER_Z, pipeline_config
from hedger.research import load_prices
from hedger.runtime.replay import replay

ROOT = Path(__file__).resolve().parents[1]
N_TICKS = 300_000


def _with_bad_print(rows: list[str], factor: float, directory: Path) -> Path:
    """The file with the last YYY print of the middle row's bar multiplied by ``factor``."""
    mid = len(rows) // 2
    bar = int(rows[mid].split(",")[0]) // 10**9
    index = max(
        i
        for i in range(mid - 500, mid + 500)
        if int(rows[i].split(",")[0]) // 10**9 == bar and rows[i].split(",")[1] == "YYY"
    )
    out = list(rows)
    ts, symbol, price, size = out[index].split(",")
    out[index] = f"{ts},{symbol},{float(price) * factor:.4f},{size}"
    path = directory / f"bad-{factor:g}.csv"
    path.write_text("ts,symbol,price,size\n" + "\n".join(out) + "\n")
    return path


def _final_beta(path: Path, gate: float | bool) -> tuple[float, int]:
    config = pipeline_config(
        {"filter": {"outlier_z": gate}}, extra_pairs=("YYY/XXX",), bar_overrides={"length": "1s"}
    )
    out = io.BytesIO()
    summary = replay([path], config, out)
    ratios = [orjson.loads(line) for line in out.getvalue().splitlines() if b"hedge_ratio" in line]
    return float(ratios[-1]["beta"]), summary.rejects.get("outlier", 0)


def bad_prints() -> None:
    source = ensure_files(Path(tempfile.gettempdir()) / "hedger-bench", [N_TICKS])[N_TICKS]
    rows = source.read_text().splitlines()[1:]
    print(f"### One bad print in {N_TICKS:,} ticks (1 s bars), final beta vs the clean run\n")
    print("| gate | print | final beta | clean | change | refused as outliers |")
    print("|---|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for gate in (False, DEFAULT_OUTLIER_Z):
            clean, _ = _final_beta(source, gate)
            for factor in (10.0, 100.0, 0.01):
                beta, refused = _final_beta(_with_bad_print(rows, factor, Path(tmp)), gate)
                label = "off" if gate is False else f"z beyond {gate:g}"
                change = (beta / clean - 1) * 100
                cells = (label, f"x{factor:g}", f"{beta:.4f}", f"{clean:.4f}", f"{change:+.2f}%")
                print("| " + " | ".join(cells) + f" | {refused} |")
    print()


Pairs = list[tuple[np.ndarray, np.ndarray]]


def _refusals(pairs: Pairs, mode: InputMode, z: float) -> tuple[int, int]:
    refused = warm = 0
    for y, x in pairs:
        f = HedgeFilter(FilterParams(mode=mode, outlier_z=z))
        for a, b in zip(y, x, strict=True):
            usable = np.isfinite(a) and np.isfinite(b) and not (mode.logarithmic and min(a, b) <= 0)
            step = f.step(float(a), float(b)) if usable else f.step(None, None)
            warm += step.warm and (step.outlier or not step.predicted_only)
        refused += f.outliers
    return refused, warm


def false_rejections() -> None:
    data: dict[str, Pairs] = {}
    for name, path, symbols in (
        ("iShares factor ETFs, 20 ordered pairs", "ishares_factors_daily.csv", None),
        ("S&P 500 / NASDAQ, both ways", "sp500_nasdaq_daily.csv", None),
        ("8 S&P 500 stocks, 56 ordered pairs", "sp500_stocks_daily.csv.gz", 8),
    ):
        table = load_prices(ROOT / "examples" / path)
        names = table.symbols[:symbols] if symbols else table.symbols
        data[name] = [
            (table.column(a), table.column(b)) for a, b in itertools.permutations(names, 2)
        ]
    bars: dict[int, dict[str, float]] = {}
    for tick in SyntheticMarket(SyntheticSpec(rate=5.0), seed=0).ticks(4 * 3600):
        bars.setdefault(tick.ts_event // 10**9, {})[tick.symbol] = tick.price
    rows = [bars[k] for k in sorted(bars)]
    data["synthetic market, 4 h of 1 s bars"] = [
        (
            np.array([r.get("YYY", np.nan) for r in rows]),
            np.array([r.get("XXX", np.nan) for r in rows]),
        )
    ]
    thresholds = (4.0, 5.0, 6.0, 8.0)
    print("### Warm bars the gate refuses on clean data (false rejections)\n")
    print("| data | mode | " + " | ".join(f"z beyond {z:g}" for z in thresholds) + " |")
    print("|---|---|" + "---:|" * len(thresholds))
    for name, pairs in data.items():
        for mode in (InputMode.LEVELS, InputMode.RETURNS):
            cells = []
            for z in thresholds:
                refused, warm = _refusals(pairs, mode, z)
                cells.append(f"{refused:,} of {warm:,} ({refused / warm * 100:.3f}%)")
            print(f"| {name} | {mode.value} | " + " | ".join(cells) + " |")
    print()


OTHER_PROBES = ("skew.py", "ws_limits.py", "probe_startup_shutdown.py", "durability.py")


def main() -> int:
    import argparse  # noqa: PLC0415
    import contextlib  # noqa: PLC0415
    import subprocess  # noqa: PLC0415

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--all", action="store_true", help="also run the other probe scripts")
    parser.add_argument("--out", type=Path, help="write the markdown here too")
    args = parser.parse_args()
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        bad_prints()
        false_rejections()
    report = buffer.getvalue()
    if args.all:
        here = Path(__file__).resolve().parent
        for script in OTHER_PROBES:
            done = subprocess.run(
                [sys.executable, str(here / script)], capture_output=True, text=True, check=False
            )
            report += f"## {script}\n\n{done.stdout}\n"
            if done.returncode != 0:
                report += f"(exit status {done.returncode}: {done.stderr.strip()[-500:]})\n\n"
    print(report, end="")
    if args.out is not None:
        args.out.write_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
