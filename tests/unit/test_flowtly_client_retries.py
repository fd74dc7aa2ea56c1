"""FlowtlyClient pacing on virtual time: retries, backoff, rate limit, cool-down, concurrency."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import json
import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any, TypeVar

import httpx
import pytest
from structlog.testing import capture_logs

from connectors.http import RetryPolicy, Throttle
from sync.errors import NotFound, RateLimited, TransientError
from sync.flowtly.client import FlowtlyClient

T = TypeVar("T")
TOKEN = "tok-SECRET-retries"


class VirtualTime:
    """A clock and sleep on virtual time: time jumps to the next sleeper once all are idle."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []
        self._waiters: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = 0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (self.now + seconds, self._seq, future))
        self._seq += 1
        await future

    async def run(self, coro: Awaitable[T]) -> T:
        task = asyncio.ensure_future(coro)
        while not task.done():
            for _ in range(100):  # let every runnable task reach its next sleep
                await asyncio.sleep(0)
                if task.done():
                    break
            if self._waiters and not task.done():
                when, _, future = heapq.heappop(self._waiters)
                self.now = max(self.now, when)
                future.set_result(None)
            elif not task.done():
                raise AssertionError("deadlock: nothing sleeps and the task does not finish")
        return task.result()


class TopRandom(random.Random):
    """Jitter that always draws the upper bound, so backoff delays are exact."""

    def uniform(self, a: float, b: float) -> float:
        return b


Responder = Callable[[httpx.Request, int], httpx.Response | Awaitable[httpx.Response]]


class Script:
    """A transport that answers from a script and records (time, method, path) per request."""

    def __init__(self, vt: VirtualTime, responder: Responder) -> None:
        self.vt = vt
        self.responder = responder
        self.calls: list[tuple[float, str, str]] = []

    async def handle(self, request: httpx.Request) -> httpx.Response:
        self.calls.append((self.vt.now, request.method, request.url.path))
        answer = self.responder(request, len(self.calls))
        if not isinstance(answer, httpx.Response):
            answer = await answer
        return answer

    def client(self, **kwargs: Any) -> FlowtlyClient:
        kwargs.setdefault("rate_limit", 0)
        kwargs.setdefault("random", random.Random(7))
        return FlowtlyClient(
            "https://api.flowtly.test",
            TOKEN,
            transport=httpx.MockTransport(self.handle),
            sleep=self.vt.sleep,
            clock=self.vt.clock,
            **kwargs,
        )


def ok(body: object | None = None, status: int = 200) -> httpx.Response:
    return httpx.Response(status, content=json.dumps(body or {"id": 1}).encode())


def fail(status: int, **headers: str) -> httpx.Response:
    body = json.dumps({"status": status, "detail": f"status {status}"}).encode()
    return httpx.Response(status, content=body, headers=headers)


def sequence(*answers: httpx.Response | type[httpx.TransportError]) -> Responder:
    """Answer the n-th request with the n-th entry (raising transport errors)."""

    def responder(request: httpx.Request, n: int) -> httpx.Response:
        answer = answers[min(n, len(answers)) - 1]
        if isinstance(answer, httpx.Response):
            return answer
        raise answer("simulated", request=request)

    return responder


# -- retries ---------------------------------------------------------------------------


async def test_429_with_retry_after_seconds_waits_at_least_that() -> None:
    vt = VirtualTime()
    script = Script(vt, sequence(fail(429, **{"Retry-After": "7"}), ok()))
    async with script.client() as client:
        assert await vt.run(client.get("/clients")) == {"id": 1}
    assert [t for t, _, _ in script.calls] == [0.0, 7.0]
    assert vt.sleeps == [7.0]
    assert client.stats.rate_limited == 1
    assert client.stats.retries == 1
    assert client.stats.waited == 7.0
    assert client.stats.by_status == {429: 1, 200: 1}


async def test_429_with_retry_after_http_date_is_measured_against_server_date() -> None:
    server_now = datetime(2026, 4, 3, 12, 0, 0, tzinfo=UTC)
    headers = {
        "Date": format_datetime(server_now, usegmt=True),
        "Retry-After": format_datetime(server_now + timedelta(seconds=12), usegmt=True),
    }
    vt = VirtualTime()
    script = Script(vt, sequence(fail(429, **headers), ok()))
    async with script.client() as client:
        await vt.run(client.get("/clients"))
    assert vt.sleeps == [12.0]
    assert script.calls[1][0] == 12.0


async def test_retry_after_shorter_than_backoff_keeps_the_backoff() -> None:
    vt = VirtualTime()
    script = Script(vt, sequence(fail(429, **{"Retry-After": "0"}), fail(429), ok()))
    async with script.client(random=TopRandom()) as client:
        await vt.run(client.get("/x"))
    assert vt.sleeps == [0.5, 1.0]


async def test_503_then_200_retries_with_jittered_backoff() -> None:
    vt = VirtualTime()
    script = Script(vt, sequence(fail(503), ok({"id": 9})))
    with capture_logs() as logs:
        async with script.client() as client:
            assert await vt.run(client.get("/clients/9")) == {"id": 9}
    assert len(script.calls) == 2
    assert len(vt.sleeps) == 1
    assert 0.0 <= vt.sleeps[0] <= 0.5
    warnings = [e for e in logs if e["log_level"] == "warning"]
    assert [(e["event"], e["status"], e["attempt"]) for e in warnings] == [
        ("flowtly.retry", 503, 0)
    ]
    debug = [(e["status"], e["attempt"]) for e in logs if e["event"] == "flowtly.request"]
    assert debug == [(503, 0), (200, 1)]
    assert TOKEN not in repr(logs)


@pytest.mark.parametrize(
    "error", [httpx.ConnectError, httpx.ReadTimeout, httpx.RemoteProtocolError]
)
async def test_get_retried_after_connection_errors_and_timeouts(
    error: type[httpx.TransportError],
) -> None:
    vt = VirtualTime()
    script = Script(vt, sequence(error, ok()))
    async with script.client() as client:
        assert await vt.run(client.get("/clients/1")) == {"id": 1}
    assert len(script.calls) == 2
    assert client.stats.transport_errors == 1


async def test_max_retries_exhausted_raises_the_last_typed_error() -> None:
    vt = VirtualTime()
    script = Script(vt, sequence(fail(502), fail(504), fail(503)))
    async with script.client(max_retries=5, random=TopRandom()) as client:
        with pytest.raises(TransientError) as caught:
            await vt.run(client.get("/clients"))
    assert caught.value.status == 503
    assert len(script.calls) == 6
    assert vt.sleeps == [0.5, 1.0, 2.0, 4.0, 8.0]
    assert client.stats.retries == 5


def test_backoff_is_capped() -> None:
    policy = RetryPolicy(max_retries=20, base=0.5, cap=30.0)
    assert [policy.delay(n, TopRandom()) for n in (0, 3, 6, 12)] == [0.5, 4.0, 30.0, 30.0]
    rng = random.Random(3)
    assert all(0.0 <= policy.delay(10, rng) <= 30.0 for _ in range(200))
    with pytest.raises(ValueError, match="max_retries"):
        RetryPolicy(max_retries=-1)


async def test_zero_max_retries_fails_at_once() -> None:
    vt = VirtualTime()
    script = Script(vt, sequence(fail(503), ok()))
    async with script.client(max_retries=0) as client:
        with pytest.raises(TransientError):
            await vt.run(client.get("/x"))
    assert len(script.calls) == 1
    assert vt.sleeps == []


@pytest.mark.parametrize(
    "first",
    [fail(503), fail(500), fail(502), httpx.ReadTimeout],
    ids=["503", "500", "502", "timeout"],
)
async def test_post_not_retried_unless_idempotent(
    first: httpx.Response | type[httpx.TransportError],
) -> None:
    vt = VirtualTime()
    script = Script(vt, sequence(first, ok(status=201)))
    async with script.client() as client:
        with pytest.raises(TransientError):
            await vt.run(client.post("/clients", {"name": "A"}))
    assert len(script.calls) == 1
    assert vt.sleeps == []

    vt = VirtualTime()
    script = Script(vt, sequence(first, ok(status=201)))
    async with script.client() as client:
        assert await vt.run(client.post("/clients", {"name": "A"}, idempotent=True)) == {"id": 1}
    assert len(script.calls) == 2


@pytest.mark.parametrize(
    "first", [fail(429, **{"Retry-After": "1"}), httpx.ConnectError], ids=["429", "refused"]
)
async def test_post_retried_when_the_server_provably_did_not_act(
    first: httpx.Response | type[httpx.TransportError],
) -> None:
    vt = VirtualTime()
    script = Script(vt, sequence(first, ok(status=201)))
    async with script.client() as client:
        assert await vt.run(client.post("/clients", {"name": "A"})) == {"id": 1}
    assert len(script.calls) == 2


async def test_500_retried_for_idempotent_only_and_501_never() -> None:
    vt = VirtualTime()
    script = Script(vt, sequence(fail(500), ok()))
    async with script.client() as client:
        await vt.run(client.patch("/clients/1", {"name": "B"}))
    assert len(script.calls) == 2

    vt = VirtualTime()
    script = Script(vt, sequence(fail(501), ok()))
    async with script.client() as client:
        with pytest.raises(TransientError):
            await vt.run(client.get("/x"))
    assert len(script.calls) == 1


async def test_4xx_other_than_429_is_not_retried() -> None:
    vt = VirtualTime()
    script = Script(vt, sequence(fail(404), ok()))
    async with script.client() as client:
        with pytest.raises(NotFound):
            await vt.run(client.get("/clients/404"))
    assert len(script.calls) == 1


async def test_delete_404_after_a_lost_answer_is_success() -> None:
    vt = VirtualTime()
    script = Script(vt, sequence(httpx.ReadTimeout, fail(404)))
    async with script.client() as client:
        await vt.run(client.delete("/client-contacts/3"))
    assert [m for _, m, _ in script.calls] == ["DELETE", "DELETE"]


async def test_delete_404_on_first_attempt_or_after_refused_connection_is_not_found() -> None:
    for first in (fail(404), httpx.ConnectError):
        vt = VirtualTime()
        script = Script(vt, sequence(first, fail(404)))
        async with script.client() as client:
            with pytest.raises(NotFound):
                await vt.run(client.delete("/client-contacts/3"))


# -- rate limit, cool-down, concurrency ------------------------------------------------


async def test_rate_limit_spaces_sequential_requests() -> None:
    vt = VirtualTime()
    script = Script(vt, lambda request, n: ok())
    n, rate = 10, 4.0

    async def run(client: FlowtlyClient) -> None:
        for i in range(n):
            await client.get(f"/clients/{i}")

    async with script.client(rate_limit=rate) as client:
        await vt.run(run(client))
    times = [t for t, _, _ in script.calls]
    assert times[-1] - times[0] >= (n - 1) / rate - 1e-9
    assert times == pytest.approx([i / rate for i in range(n)])
    assert client.stats.waited == pytest.approx((n - 1) / rate)


async def test_rate_limit_spaces_concurrent_requests() -> None:
    vt = VirtualTime()
    script = Script(vt, lambda request, n: ok())
    n, rate = 12, 5.0
    async with script.client(rate_limit=rate, concurrency=8) as client:
        await vt.run(asyncio.gather(*(client.get(f"/c/{i}") for i in range(n))))
    times = sorted(t for t, _, _ in script.calls)
    assert len(times) == n
    assert times[-1] >= (n - 1) / rate - 1e-9
    assert times == pytest.approx([i / rate for i in range(n)])
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= 1 / rate - 1e-9


async def test_retries_also_take_rate_slots() -> None:
    vt = VirtualTime()
    script = Script(vt, sequence(fail(503), ok(), ok()))
    async with script.client(rate_limit=1.0, random=TopRandom()) as client:

        async def run() -> None:
            await client.get("/a")
            await client.get("/b")

        await vt.run(run())
    times = [t for t, _, _ in script.calls]
    # /a at 0, retry after 0.5 s backoff waits for the 1 s slot, /b one slot later
    assert times == [0.0, 1.0, 2.0]


async def test_zero_rate_limit_never_waits() -> None:
    vt = VirtualTime()
    script = Script(vt, lambda request, n: ok())
    async with script.client(rate_limit=0) as client:
        await vt.run(asyncio.gather(*(client.get(f"/c/{i}") for i in range(20))))
    assert vt.sleeps == []
    assert client.stats.requests == 20


async def test_429_cool_down_holds_every_request() -> None:
    vt = VirtualTime()

    def responder(request: httpx.Request, n: int) -> httpx.Response:
        if request.url.path == "/a" and n == 1:
            return fail(429, **{"Retry-After": "5"})
        return ok()

    script = Script(vt, responder)
    async with script.client(concurrency=4) as client:

        async def later() -> None:
            await vt.sleep(1.0)  # starts during A's cool-down
            await client.get("/b")

        await vt.run(asyncio.gather(client.get("/a"), later()))
    started = {path: t for t, _, path in script.calls}
    assert started["/b"] >= 5.0
    assert [p for _, _, p in script.calls].count("/a") == 2


async def test_cool_down_after_exhausted_retries_still_applies_to_next_request() -> None:
    vt = VirtualTime()
    script = Script(vt, sequence(fail(429, **{"Retry-After": "30"}), ok()))
    async with script.client(max_retries=0) as client:
        with pytest.raises(RateLimited) as caught:
            await vt.run(client.get("/a"))
        assert caught.value.retry_after == 30.0
        await vt.run(client.get("/b"))
    assert [t for t, _, _ in script.calls] == [0.0, 30.0]


async def test_throttle_cool_down_never_shortens() -> None:
    vt = VirtualTime()
    throttle = Throttle(0, clock=vt.clock, sleep=vt.sleep)
    throttle.cool_down(10)
    throttle.cool_down(2)
    assert throttle.cooldown_until == 10
    assert await vt.run(throttle.acquire()) == 10
    with pytest.raises(ValueError, match="rate"):
        Throttle(-1, clock=vt.clock, sleep=vt.sleep)


async def test_cool_down_starting_during_a_slot_wait_holds_the_waiter() -> None:
    vt = VirtualTime()
    throttle = Throttle(1.0, clock=vt.clock, sleep=vt.sleep)
    starts: list[float] = []

    async def acquire() -> None:
        await throttle.acquire()
        starts.append(vt.now)

    async def rate_limited_elsewhere() -> None:
        await vt.sleep(0.5)
        throttle.cool_down(5.0)

    await vt.run(asyncio.gather(acquire(), acquire(), rate_limited_elsewhere()))
    assert starts == [0.0, 5.5]


async def test_concurrency_bound_limits_requests_in_flight() -> None:
    in_flight = 0
    peak = 0
    release = asyncio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await release.wait()
        in_flight -= 1
        return ok()

    client = FlowtlyClient(
        "https://api.flowtly.test",
        TOKEN,
        transport=httpx.MockTransport(handler),
        concurrency=3,
        rate_limit=0,
    )
    async with client:
        tasks = [asyncio.ensure_future(client.get(f"/c/{i}")) for i in range(10)]
        for _ in range(50):
            await asyncio.sleep(0)
        assert in_flight == 3
        release.set()
        await asyncio.gather(*tasks)
    assert peak == 3
    assert client.stats.requests == 10
