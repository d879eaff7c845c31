"""Websocket venues as sans-I/O message formats (binance, coinbase, alpaca, polygon) and the
field readers they share."""
