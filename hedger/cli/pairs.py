"""``hedger pairs``: add, change, remove and list the pairs of a running daemon, over its
WebSocket server (``--url``, with its token) or the MQTT control topic (``--broker``)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import uuid
from typing import Any

import orjson

from hedger.core.topics import PairId
from hedger.engine import InputMode
from hedger.errors import ConfigError, HedgerError, TransportError

HELP = "add, update, remove or list the pairs of a running daemon"
DESCRIPTION = (
    "Change a running daemon's pairs without a restart: over its WebSocket server (--url, "
    "authenticated with its token) or its MQTT control topic (--broker, with [control] in "
    "the daemon's config). A pair added here is gone after a restart: the config file is "
    "the source of truth. Exit status 0 when the daemon did it, 1 when it refused or could "
    "not be reached (one line on stderr)."
)

DEFAULT_URL = "ws://127.0.0.1:8765/"
DEFAULT_TOKEN_ENV = "HEDGER_TOKEN"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``hedger pairs`` and its actions."""
    actions = parser.add_subparsers(dest="pairs_action", metavar="ACTION", required=True)
    add = actions.add_parser("add", help="run one more pair, warmed from the bars held")
    add.add_argument("pair", type=_pair, help="the pair id, Y/X or Y/X1+X2")
    _filter_options(add)
    _transport_options(add)
    update = actions.add_parser(
        "update", help="new parameters for a running pair (its whole table, over [filter])"
    )
    update.add_argument("pair", type=_pair, help="the pair id")
    _filter_options(update)
    _transport_options(update)
    remove = actions.add_parser("remove", help="stop running a pair and clear its retained topics")
    remove.add_argument("pair", type=_pair, help="the pair id")
    _transport_options(remove)
    listing = actions.add_parser("list", help="the pairs the daemon runs")
    _transport_options(listing)


def _pair(text: str) -> str:
    try:
        return str(PairId.parse(text))
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(exc.problem) from None


def _number_or_false(text: str) -> float | bool:
    if text.strip().lower() == "false":
        return False
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a number or false, got {text!r}") from None


def _filter_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mode", choices=[m.value for m in InputMode], help="input transform")
    parser.add_argument("--delta", type=float, help="state noise, in [0, 1)")
    parser.add_argument("--obs-cov", type=float, help="observation noise R (> 0)")
    parser.add_argument(
        "--adaptive-r", type=_number_or_false, help="forgetting factor in (0, 1), or false"
    )
    parser.add_argument("--init", choices=["ols", "diffuse"], help="initialisation")
    parser.add_argument("--warmup", type=int, help="observations of the warm-up")
    parser.add_argument(
        "--intercept", action=argparse.BooleanOptionalAction, help="whether the state has alpha"
    )
    parser.add_argument(
        "--outlier-z", type=_number_or_false, help="the innovation gate's |z|, or false"
    )
    parser.add_argument("--outlier-run", type=int, help="outliers in a row that restart")


_FILTER_KEYS = (
    "mode",
    "delta",
    "obs_cov",
    "adaptive_r",
    "init",
    "warmup",
    "intercept",
    "outlier_z",
    "outlier_run",
)


def _transport_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url", help=f"the daemon's WebSocket server (default {DEFAULT_URL} unless --broker)"
    )
    parser.add_argument(
        "--broker", help="use the MQTT control topic of this broker instead (mqtt://host:port)"
    )
    parser.add_argument("--root", default="hedger", help="MQTT topic root (default hedger)")
    parser.add_argument(
        "--token",
        help="the WebSocket server's token, or the [control] token over MQTT (prefer "
        "--token-env: a command line is visible to other users)",
    )
    parser.add_argument(
        "--token-env",
        default=DEFAULT_TOKEN_ENV,
        help=f"environment variable holding the token (default {DEFAULT_TOKEN_ENV})",
    )
    parser.add_argument(
        "--timeout", type=float, default=10.0, help="seconds to wait for the reply (default 10)"
    )


def request_of(args: argparse.Namespace) -> dict[str, Any]:
    """The control request the command line asks for (with a fresh ``id``)."""
    action = {"add": "add_pair", "update": "update_pair", "remove": "remove_pair"}.get(
        args.pairs_action, "list_pairs"
    )
    request: dict[str, Any] = {"action": action, "id": uuid.uuid4().hex}
    if action != "list_pairs":
        request["pair"] = args.pair
    for key in _FILTER_KEYS:
        value = getattr(args, key, None)
        if value is not None:
            request[key] = value
    return request


def _token(args: argparse.Namespace) -> str | None:
    if args.token:
        return str(args.token)
    found = os.environ.get(args.token_env)
    return found or None


def run(args: argparse.Namespace) -> int:
    """Send the request, print what the daemon did; 1 (one line) when refused or unreachable."""
    if args.timeout <= 0:
        raise ConfigError("--timeout", f"must be > 0, got {args.timeout:g}")
    if args.url is not None and args.broker is not None:
        raise ConfigError("--url", "give --url or --broker, not both")
    request = request_of(args)
    token = _token(args)
    try:
        if args.broker is not None:
            if token is not None:
                request["token"] = token
            reply = asyncio.run(_over_mqtt(args.broker, args.root, request, args.timeout))
        else:
            url = args.url or DEFAULT_URL
            reply = asyncio.run(_over_websocket(url, token, request, args.timeout))
    except TransportError as exc:
        print(f"hedger pairs: {exc}", file=sys.stderr)
        return 1
    if not reply.get("ok"):
        print(f"hedger pairs: refused: {reply.get('error', 'no reason given')}", file=sys.stderr)
        return 1
    print(describe(reply))
    return 0


def describe(reply: dict[str, Any]) -> str:
    """A successful reply as a person reads it."""
    action = reply.get("action")
    pair = reply.get("pair")
    if action == "add_pair":
        warm = int(reply.get("warm_bars", 0))
        how = f"warmed on {warm} held bars" if warm else "cold: no held bars of its legs"
        return f"added {pair} ({how})"
    if action == "update_pair":
        how = (
            "state kept, new noise"
            if reply.get("kept_state")
            else f"rebuilt on {reply.get('warm_bars', 0)} held bars"
        )
        return f"updated {pair} ({how})"
    if action == "remove_pair":
        return f"removed {pair} (after seq {reply.get('seq')}; retained topics cleared)"
    lines = [
        f"{p['pair']}  mode={p['mode']}  seq={p['seq']}  observations={p['observations']}"
        for p in reply.get("pairs", [])
    ]
    lines.append(f"{len(lines)} pair(s); {reply.get('held_bars', 0)} bars held")
    return "\n".join(lines)


async def _over_websocket(
    url: str, token: str | None, request: dict[str, Any], timeout: float
) -> dict[str, Any]:
    # only this action needs the client: the other commands do not load it
    from websockets.asyncio.client import connect  # noqa: PLC0415
    from websockets.exceptions import InvalidStatus, WebSocketException  # noqa: PLC0415

    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    try:
        async with asyncio.timeout(timeout):
            async with connect(
                url, additional_headers=headers, open_timeout=None, compression=None
            ) as ws:
                await ws.send(orjson.dumps(request).decode())
                async for frame in ws:
                    reply = _reply(frame, request["id"])
                    if reply is not None:
                        return reply
    except TimeoutError:
        raise TransportError("websocket", url, f"no reply within {timeout:g} s") from None
    except InvalidStatus as exc:
        status = exc.response.status_code
        why = "wrong or missing token" if status == 401 else "refused the connection"
        raise TransportError("websocket", url, f"HTTP {status}: {why}") from None
    except (OSError, WebSocketException) as exc:
        problem = f"cannot reach the daemon: {exc.strerror if isinstance(exc, OSError) else exc}"
        raise TransportError("websocket", url, problem) from None
    except HedgerError:
        raise
    raise TransportError("websocket", url, "the daemon closed the connection before replying")


def _reply(frame: str | bytes, request_id: str) -> dict[str, Any] | None:
    """``frame`` if it is the reply to ``request_id``, else None (status, events)."""
    try:
        obj = orjson.loads(frame)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(obj, dict):
        return None
    if obj.get("type") == "control_reply" and obj.get("id") == request_id:
        return obj
    if obj.get("type") == "error":  # a server that does not know control actions
        return {"ok": False, "error": obj.get("error")}
    return None


async def _over_mqtt(
    url: str, root: str, request: dict[str, Any], timeout: float
) -> dict[str, Any]:
    from hedger.runtime.bridges.mqtt import control_request  # noqa: PLC0415 (only with --broker)

    frame = await control_request(url, root, orjson.dumps(request), request["id"], timeout)
    reply = orjson.loads(frame)
    assert isinstance(reply, dict)
    return reply
