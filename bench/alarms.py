"""The relationship-break alarm's figures (docs/alarms.md): false alarms on a synthetic pair whose
beta never moves, bars until the alarm after the beta jumps, and how often it fires on the
shipped real data.

Every run goes through the daemon's own path (synthetic ticks -> Pipeline -> PairActor ->
alarm events) at 1 s bars, with the replay's defaults (Chan's delta = 1e-4, R = 1e-3 adaptive,
the innovation gate at 6) and the detector's defaults unless told.

    python bench/alarms.py                   # 20 seeds, about 3 minutes on 2 cores
    python bench/alarms.py --seeds 5 --quick # a smoke run
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from feeds.synthetic import SyntheticMarket, SyntheticSpec  # noqa: E402
from hedger.core.actors import PairSpec  # noqa: E402
from hedger.core.events import AlarmEvent, Event, HedgeRatioEvent  # noqa: E402
from hedger.core.pipeline import Pipeline  # noqa: E402
from hedger.core.rejects import Rejects  # noqa: E402
from hedger.core.topics import PairId  # noqa: E402
from hedger.engine import FilterParams, InputMode  # noqa: E402
from hedger.engine.alarm import AlarmParams  # noqa: E402

NS = 1_000_000_000
JUMP_AT = 2000.0
"""Seconds (= 1 s bars) before the break: the filter is warm and the detector past its
burn-in."""
AFTER = 1000
"""Bars watched after the break; an alarm later than this is a miss."""


@dataclass(frozen=True)
class Market:
    """A synthetic market variant: its name and the spec's overrides."""

    name: str
    sigma_x: float = 0.0005


MARKETS = (
    Market("default"),  # X explains about a fifth of Y's 1 s return variance
    Market("high R^2", sigma_x=0.002),  # X explains most of it, like two index ETFs
)


def raised(mode: str, spec: SyntheticSpec, seed: int, seconds: float) -> tuple[list[int], int]:
    """(the bar index of every alarm raised, bars run) for one market and seed."""
    alarms, bars, _ = run(mode, spec, seed, seconds)
    return alarms, bars


def run(
    mode: str, spec: SyntheticSpec, seed: int, seconds: float
) -> tuple[list[int], int, list[Event]]:
    """:func:`raised`, and every event."""
    events: list[Event] = []
    params = FilterParams(mode=InputMode(mode), outlier_z=6.0)
    pair = PairSpec(PairId(spec.y, spec.xs), params, alarm=AlarmParams())
    pipeline = Pipeline([pair], NS, NS, events.append, Rejects())
    for tick in SyntheticMarket(spec, seed=seed).ticks(seconds):
        pipeline.on_tick(tick)
    pipeline.flush()
    bars = pipeline.actors[0].seq
    alarms = [e.seq - 1 for e in events if isinstance(e, AlarmEvent) and e.state == "raised"]
    return alarms, bars, events


def false_alarms(mode: str, market: Market, seeds: int, seconds: float) -> tuple[float, int]:
    """False alarms per 10,000 bars with a constant beta, and the bars judged."""
    count = bars = 0
    for seed in range(seeds):
        spec = SyntheticSpec(beta_vol=0.0, sigma_x=market.sigma_x)
        alarms, n = raised(mode, spec, seed, seconds)
        count += len(alarms)
        bars += n
    return count / bars * 1e4, bars


def delays(
    mode: str, market: Market, factor: float, seeds: int
) -> tuple[list[float], list[tuple[float, float]]]:
    """Bars from the break to the first alarm after it, per seed (inf: none within AFTER), and
    the filter's hedge in shares divided by the true beta (the median over bars 1000-2000
    before the break, and over bars 100-1000 after it, per seed): how right the hedge is,
    alarm or not."""
    found: list[float] = []
    hedged: list[tuple[float, float]] = []
    for seed in range(1000, 1000 + seeds):
        # a sign flip needs alpha = 400 to keep Y positive (the log modes need it); the
        # other breaks keep the default 5, so that Y is mostly beta * X, as in a hedge
        alpha = 400.0 if factor < 0 else SyntheticSpec().alpha
        spec = SyntheticSpec(
            beta_vol=0.0, sigma_x=market.sigma_x, alpha=alpha, beta_jumps=((JUMP_AT, factor),)
        )
        market_run = SyntheticMarket(spec, seed=seed)
        alarms, _, events = run(mode, spec, seed, JUMP_AT + AFTER)
        after = [a - int(JUMP_AT) for a in alarms if a >= int(JUMP_AT) - 1]
        found.append(float(after[0]) if after else float("inf"))
        list(market_run.ticks(JUMP_AT + AFTER))  # the true path of the same seed
        ratios = {
            e.seq - 1: e.hedge[0] / market_run.true_betas(e.ts)[0]
            for e in events
            if isinstance(e, HedgeRatioEvent) and e.hedge is not None
        }
        jump = int(JUMP_AT)
        before = [r for bar, r in ratios.items() if jump - 1000 <= bar < jump]
        after_break = [r for bar, r in ratios.items() if jump + 100 <= bar < jump + AFTER]
        hedged.append((float(np.median(before)), float(np.median(after_break))))
    return found, hedged


def _quantile(values: list[float], q: float) -> str:
    x = np.sort(np.array(values))
    value = x[min(len(x) - 1, int(np.ceil(q * len(x))) - 1)]
    return f"> {AFTER}" if not np.isfinite(value) else f"{value:.0f}"


def real_data() -> list[tuple[str, str, int, int, int, str]]:
    """(file, pair, bars, alarms, alarms in the test window, first dates) of ``evaluate``'s
    recommended filter on the shipped daily files."""
    from hedger.research.evaluate import evaluate_pair, split_index  # noqa: PLC0415
    from hedger.research.prices import load_prices  # noqa: PLC0415

    rows = []
    cases = (
        ("sp500_nasdaq_daily.csv", "SP500", "NASDAQ"),
        ("ishares_factors_daily.csv", "VLUE", "SIZE"),
        ("ishares_factors_daily.csv", "MTUM", "QUAL"),
        ("ishares_factors_daily.csv", "USMV", "QUAL"),
    )
    for name, y_sym, x_sym in cases:
        table = load_prices(ROOT / "examples" / name)
        y = table.prices[:, table.symbols.index(y_sym)]
        x = table.prices[:, table.symbols.index(x_sym)]
        split = split_index(None, table, len(y))
        ev = evaluate_pair(
            y, x, pair=f"{y_sym}/{x_sym}", ts=table.ts, labels=table.labels, split=split
        )
        in_test = [s for s in ev.alarms if s.start >= split]
        where = ", ".join(f"{s.kind} {table.labels[s.start]}" for s in ev.alarms)
        rows.append((name, ev.pair, len(y), len(ev.alarms), len(in_test), where))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20, help="seeds per figure (20)")
    parser.add_argument("--bars", type=int, default=10_000, help="bars per null run (10,000)")
    parser.add_argument("--quick", action="store_true", help="skip the high-R^2 market")
    args = parser.parse_args()
    started = time.perf_counter()
    markets = MARKETS[:1] if args.quick else MARKETS
    print(f"seeds {args.seeds}, {args.bars} bars per null run, break at bar {JUMP_AT:.0f}\n")
    print(
        "| market | mode | false alarms / 10k bars | +20%: median, p90 | +50% | sign flip "
        "| hedge / true beta, before -> after: +20%; +50%; flip |"
    )
    print("|---|---|---|---|---|---|---|")
    for market in markets:
        for mode in ("levels", "returns"):
            rate, bars = false_alarms(mode, market, args.seeds, float(args.bars))
            cells, right = [], []
            for factor in (1.2, 1.5, -1.0):
                found, hedged = delays(mode, market, factor, args.seeds)
                before, after = np.median(np.array(hedged), axis=0)
                right.append(f"{before:.2f} -> {after:.2f}")
                missed = sum(1 for d in found if not np.isfinite(d))
                miss = f" ({missed} of {len(found)} missed)" if missed else ""
                cells.append(f"{_quantile(found, 0.5)}, {_quantile(found, 0.9)}{miss}")
            head = f"| {market.name} | {mode} | {rate:.2f} ({bars} bars) | "
            print(head + " | ".join(cells) + " | " + "; ".join(right) + " |")
            sys.stdout.flush()
    print("\n| file | pair | bars | alarms | in the test window | raised (kind, date) |")
    print("|---|---|---|---|---|---|")
    for name, pair, bars, count, in_test, where in real_data():
        print(f"| {name} | {pair} | {bars} | {count} | {in_test} | {where} |")
    print(f"\n({time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
