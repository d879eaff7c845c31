"""Offline evidence: price tables, static and rolling baselines, hedge metrics, the z-score
backtest, the out-of-sample evaluation, the synthetic tracking check and the plots."""
