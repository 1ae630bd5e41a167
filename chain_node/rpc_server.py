"""A JSON-RPC front for the embedded chain: ``consentgate chain-node``.

The embedded py-evm chain (:mod:`chain_node.embedded`) belongs to the one process that
holds its folder's lock. Served over HTTP by this module, it becomes a node like any
other: several API processes, an anchoring worker and a bulk-ingest process reach it
through :class:`chain_node.jsonrpc.JsonRpcChain`, exactly as they would reach anvil or
geth, while the EVM work runs in the node's own process.

Protocol: JSON-RPC 2.0 over HTTP POST (https://www.jsonrpc.org/specification), a single
request or a batch (an array, answered by an array in the same order, section 6).
Numbers in results are hex quantities and byte strings 0x hex (Ethereum JSON-RPC
"quantity"/"data" encoding, https://ethereum.org/en/developers/docs/apis/json-rpc/).

Methods: an allow-list (:data:`METHODS`) of what a service process, a wallet-less
client or an auditor needs: ``eth_chainId``, ``net_version``, ``eth_blockNumber``,
``eth_getBlockByNumber``/``ByHash``, ``eth_getTransactionCount``, ``eth_estimateGas``,
``eth_call``, ``eth_sendRawTransaction``, ``eth_getTransactionReceipt``,
``eth_getTransactionByHash``, ``eth_getLogs``, ``eth_getCode``, ``eth_getBalance``,
``eth_getStorageAt``, ``eth_feeHistory``, ``eth_gasPrice``, ``eth_maxPriorityFeePerGas``,
``web3_clientVersion``. Every ``eth_sendRawTransaction`` is mined into its own block and
committed to disk before the answer (the embedded chain's durability rule). Nothing that
signs with a node-held account, installs server-side state (filters) or rewrites
history (``evm_snapshot``/``evm_revert``) is offered. Only a node started with ``dev``
(tests) adds ``evm_increaseTime`` (whole seconds, 0 to :data:`MAX_TIME_OFFSET_S`) and
``evm_mine``: on a durable chain a time offset can never be taken back.

Limits (geth's defaults where it has one): a body of at most :data:`MAX_BODY_BYTES`, a
batch of at most :data:`MAX_BATCH` requests, and JSON nested at most
:data:`MAX_JSON_DEPTH` deep.

Errors (the ``error`` member): ``-32700`` parse error (also a body too large or too
deep), ``-32600`` invalid request (no ``"jsonrpc": "2.0"``, an id that is not a string,
number or null, a batch too long), ``-32601`` method not found (or not offered),
``-32602`` invalid params, ``3`` "execution reverted" with the raw revert data in
``data`` (geth/anvil convention, decoded by the client), ``-32000`` any other refusal (a
bad nonce, a stopped chain) with the reason in ``message``.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from web3.datastructures import NamedElementOnion

from .errors import ChainRevert

if TYPE_CHECKING:
    from .embedded import EmbeddedChain

log = logging.getLogger("consentgate.chain_node")

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
EXECUTION_REVERTED = 3
SERVER_ERROR = -32000

METHODS = frozenset(
    {
        "eth_chainId",
        "eth_blockNumber",
        "eth_getBlockByNumber",
        "eth_getBlockByHash",
        "eth_getTransactionCount",
        "eth_estimateGas",
        "eth_call",
        "eth_sendRawTransaction",
        "eth_getTransactionReceipt",
        "eth_getTransactionByHash",
        "eth_getLogs",
        "eth_getCode",
        "eth_getBalance",
        "eth_getStorageAt",
        "eth_feeHistory",
        "eth_gasPrice",
        "eth_maxPriorityFeePerGas",
    }
)
"""The eth-tester methods served (the allow-list); see the module doc."""
MAX_TIME_OFFSET_S = 10 * 366 * 24 * 3600  # one call moves chain time at most ten years
MAX_BODY_BYTES = 16 * 1024 * 1024
MAX_BATCH = 1000
MAX_JSON_DEPTH = 64
BLOOM_BYTES = 256
CLIENT_VERSION = "consentgate-chain-node/1 (py-evm via eth-tester)"
# a bad argument surfaces from web3's and eth-tester's formatters as one of these
_BAD_PARAMS = (TypeError, KeyError, IndexError, AttributeError, OverflowError)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)


def json_depth_ok(body: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when ``body`` (JSON text) nests arrays/objects at most ``limit`` deep.

    Checked before parsing: a body of a few hundred KB nested 100,000 deep overflows the
    C stack of the parser once py_ecc has raised the recursion limit (it does on import).
    String contents are skipped; no call of the methods served needs more than a
    handful of levels.
    """
    if body.count(b"[") + body.count(b"{") <= limit:
        return True  # fast path: not enough brackets to nest that deep
    depth = 0
    outside_strings = _STRING.sub(b'""', body)  # brackets inside strings do not nest
    for byte in outside_strings.translate(None, _NOT_BRACKETS):
        depth += 1 if byte in (0x5B, 0x7B) else -1
        if depth > limit:
            return False
    return True


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_body(raw: bytes) -> Any:
    """``raw`` decoded as strict JSON: NaN, Infinity and numbers that overflow to an
    infinity are refused (ValueError), as RFC 8259 section 6 has no such values."""

    def finite(text: str) -> float:
        value = float(text)
        if math.isinf(value):
            raise ValueError(f"number out of range: {text[:20]}")
        return value

    return json.loads(raw, parse_constant=_no_constant, parse_float=finite)


class _AsciiJSON(JSONResponse):
    """JSON with non-ASCII escaped: a lone surrogate echoed from a request cannot break
    the encoding of the answer."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False).encode("ascii")


def to_wire(value: Any, key: str = "") -> Any:
    """eth-tester's result values in JSON-RPC encoding: ints as hex quantities
    (``"0x1a"``), bytes as 0x hex data, the logs bloom (an int) as 256 bytes of data;
    dicts and lists recursively; bools, None and strings unchanged."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        if key == "logsBloom":
            return "0x" + value.to_bytes(BLOOM_BYTES, "big").hex()
        return hex(value)
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    if isinstance(value, dict):
        return {k: to_wire(v, k) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_wire(v, key) for v in value]
    return value


def _error(request_id: Any, code: int, message: str, data: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "id": request_id, "error": error}


class RpcFront:
    """Answers JSON-RPC requests from one :class:`EmbeddedChain`.

    :meth:`handle` takes the decoded request body (a request object or a batch list)
    and returns the response body (an object, a list, or None when every request was a
    notification). It blocks while the chain works: call it from a worker thread.
    """

    def __init__(self, chain: EmbeddedChain, dev: bool = False) -> None:
        self.chain = chain
        # web3's eth-tester request pipeline without web3's client-side formatters:
        # the provider's own middleware (request params from the wire, result key
        # names) and then the provider, under the chain's lock
        self._request: Callable[..., Any] = chain.w3.provider.request_func(
            chain.w3, NamedElementOnion([])
        )
        self._extra: dict[str, Callable[[list[Any]], Any]] = {
            "net_version": lambda _: str(chain.chain_id),
            "web3_clientVersion": lambda _: CLIENT_VERSION,
        }
        if dev:
            self._extra |= {"evm_increaseTime": self._increase_time, "evm_mine": self._mine}

    def handle(self, body: Any) -> Any:
        """The response body for ``body`` (JSON-RPC 2.0 sections 4-6)."""
        if isinstance(body, list):
            if not body:
                return _error(None, INVALID_REQUEST, "empty batch")
            if len(body) > MAX_BATCH:
                return _error(None, INVALID_REQUEST, f"a batch holds at most {MAX_BATCH} calls")
            answers = [self.call(item) for item in body]
            kept = [a for a in answers if a is not None]
            return kept or None
        return self.call(body)

    def call(self, request: Any) -> dict[str, Any] | None:
        """The response object of one request object, or None for a notification."""
        if not isinstance(request, dict) or not isinstance(request.get("method"), str):
            return _error(None, INVALID_REQUEST, "a request object needs a string 'method'")
        request_id = request.get("id")
        if isinstance(request_id, bool) or not isinstance(request_id, str | int | float | None):
            return _error(None, INVALID_REQUEST, "id must be a string, a number or null")
        if request.get("jsonrpc") != "2.0":
            return _error(request_id, INVALID_REQUEST, 'a request needs "jsonrpc": "2.0"')
        notification = "id" not in request
        method: str = request["method"]
        params = request.get("params", [])
        if not isinstance(params, list):
            answer = _error(request_id, INVALID_PARAMS, "params must be an array")
        else:
            answer = self._dispatch(request_id, method, params)
        return None if notification else answer

    def _dispatch(self, request_id: Any, method: str, params: list[Any]) -> dict[str, Any]:
        if method not in METHODS and method not in self._extra:
            return _error(request_id, METHOD_NOT_FOUND, f"{method} is not offered by this node")
        try:
            if method in self._extra:
                result = self._extra[method](params)
            else:
                response = self._request(method, params)
                if "error" in response:
                    error = dict(response["error"])
                    return {"jsonrpc": "2.0", "id": request_id, "error": error}
                result = response.get("result")
        except ChainRevert as exc:
            return _error(request_id, EXECUTION_REVERTED, "execution reverted", to_wire(exc.data))
        except _BAD_PARAMS as exc:
            return _error(request_id, INVALID_PARAMS, f"{method}: bad params: {exc}")
        except Exception as exc:  # a refusal of the chain, reported, never a dropped call
            log.debug("%s refused: %s", method, exc)
            return _error(request_id, SERVER_ERROR, f"{type(exc).__name__}: {exc}")
        return {"jsonrpc": "2.0", "id": request_id, "result": to_wire(result)}

    def _increase_time(self, params: list[Any]) -> Any:
        """``evm_increaseTime [seconds]`` (dev): later blocks are stamped that much later;
        whole seconds (a number or a hex quantity), 0 to :data:`MAX_TIME_OFFSET_S`."""
        seconds = params[0]
        if isinstance(seconds, str):
            try:
                seconds = int(seconds, 16)
            except ValueError:
                raise TypeError(f"not a hex quantity: {seconds!r}") from None
        if isinstance(seconds, bool) or not isinstance(seconds, int):
            raise TypeError("seconds must be a whole number")
        if not 0 <= seconds <= MAX_TIME_OFFSET_S:
            raise TypeError(f"seconds must be between 0 and {MAX_TIME_OFFSET_S}")
        self.chain.add_time_offset(seconds)
        return seconds

    def _mine(self, params: list[Any]) -> Any:
        """``evm_mine``: mine one (empty) block now."""
        self.chain.mine_block()
        return "0x0"


def rpc_app(chain: EmbeddedChain, dev: bool = False) -> Starlette:
    """The ASGI app serving ``chain`` at ``POST /`` (JSON-RPC 2.0, see the module doc;
    ``dev`` adds the time methods). ``GET /`` answers ``{"chain_id", "block_number",
    "pid"}``: a liveness probe that also tells a supervisor which process answers."""
    import os

    front = RpcFront(chain, dev)

    async def rpc(request: Request) -> Response:
        raw = b""
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > MAX_BODY_BYTES:
                return _AsciiJSON(
                    _error(None, PARSE_ERROR, f"body larger than {MAX_BODY_BYTES} bytes"),
                    status_code=413,
                )
        if not json_depth_ok(raw):
            return _AsciiJSON(_error(None, PARSE_ERROR, f"JSON nested over {MAX_JSON_DEPTH}"))
        try:
            body = parse_body(raw)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            return _AsciiJSON(_error(None, PARSE_ERROR, f"parse error: {exc}"))
        answer = await run_in_threadpool(front.handle, body)
        if answer is None:
            return Response(status_code=204)
        return _AsciiJSON(answer)

    async def alive(request: Request) -> Response:
        number = await run_in_threadpool(chain.block_number)
        return JSONResponse(
            {"chain_id": chain.chain_id, "block_number": number, "pid": os.getpid()}
        )

    return Starlette(routes=[Route("/", rpc, methods=["POST"]), Route("/", alive)])


class ServedChain:
    """``chain`` served by uvicorn in a thread of this process, on ``host`` and a free
    port (tests, benches; with the ``dev`` methods unless told otherwise). ``url``: the
    node's address; :meth:`stop` stops serving (the chain stays open: its owner closes
    it). A context manager."""

    def __init__(self, chain: EmbeddedChain, host: str = "127.0.0.1", dev: bool = True) -> None:
        import socket
        import threading
        import time

        import uvicorn

        with socket.socket() as sock:
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
        self.url = f"http://{host}:{port}"
        self._server = uvicorn.Server(
            uvicorn.Config(rpc_app(chain, dev), host=host, port=port, log_level="warning")
        )
        self._thread = threading.Thread(target=self._server.run, name="chain-node", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"chain node did not start on {self.url}")
            time.sleep(0.02)

    def stop(self) -> None:
        """Stop serving and wait for the server thread (idempotent)."""
        self._server.should_exit = True
        self._thread.join(30)

    def __enter__(self) -> ServedChain:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_node(
    url: str,
    timeout_s: float = 60.0,
    failed: Callable[[], bool] | None = None,
    pid: Callable[[], int | None] | None = None,
) -> int:
    """Wait until the chain node at ``url`` answers its liveness probe; returns the
    chain id.

    ``pid`` (if given) names the process that must answer: a node of another data
    folder already listening on a pinned port is not taken for ours. Polls every 50 ms.
    Raises TimeoutError after ``timeout_s`` seconds, or at once when ``failed()`` (if
    given) turns true, e.g. when the node's process has exited.
    """
    import time

    import httpx

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            answer = httpx.get(url, timeout=5).json()
            if pid is None or answer["pid"] == pid():
                return int(answer["chain_id"])
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            pass
        if failed is not None and failed():
            raise TimeoutError(f"the chain node for {url} exited")
        if time.monotonic() > deadline:
            raise TimeoutError(f"no chain node answered at {url} within {timeout_s:g} s")
        time.sleep(0.05)
