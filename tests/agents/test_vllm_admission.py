"""The vllm backend's admission gate (``AdmitTogether``): requests that arrive over a few event-loop turns
go into the engine together, and one that is cancelled while it waits leaves the others alone. Needs no vLLM."""

from __future__ import annotations

import asyncio

import pytest

from turngym.agents.vllm import AdmitTogether


async def _ask(gate: AdmitTogether, name: str, delay_turns: int, order: list[str]) -> str:
    for _ in range(delay_turns):  # an episode that does its own work (env step, next prompt) before it asks
        await asyncio.sleep(0)
    await gate.wait()
    order.append(name)
    return name


def test_a_burst_is_admitted_together_and_each_request_gets_its_own_turn():
    async def main():
        gate, order = AdmitTogether(), []
        admitted_at: dict[str, int] = {}
        turns = 0

        async def clock():
            nonlocal turns
            while len(order) < 4:
                for name in order:
                    admitted_at.setdefault(name, turns)
                turns += 1
                await asyncio.sleep(0)
            for name in order:
                admitted_at.setdefault(name, turns)

        results = await asyncio.gather(
            clock(), *(_ask(gate, n, d, order) for n, d in (("a", 0), ("b", 1), ("c", 2), ("d", 0)))
        )
        return results[1:], admitted_at

    results, admitted_at = asyncio.run(main())
    assert results == ["a", "b", "c", "d"]  # each caller is answered for itself
    assert len(set(admitted_at.values())) == 1, admitted_at  # all in the same event-loop turn


def test_a_cancelled_waiter_leaves_the_others_waiting_and_then_admitted():
    async def main():
        gate, order = AdmitTogether(), []
        first = asyncio.ensure_future(_ask(gate, "cancelled", 0, order))
        second = asyncio.ensure_future(_ask(gate, "kept", 0, order))
        await asyncio.sleep(0)
        first.cancel()
        assert await second == "kept"
        with pytest.raises(asyncio.CancelledError):
            await first
        # the gate opens again for later requests
        assert await _ask(gate, "later", 0, order) == "later"
        return order

    assert asyncio.run(main()) == ["kept", "later"]


def test_close_cancels_the_waiting_requests():
    async def main():
        gate = AdmitTogether()
        waiting = asyncio.ensure_future(gate.wait())
        await asyncio.sleep(0)
        gate.close()
        with pytest.raises(asyncio.CancelledError):
            await waiting

    asyncio.run(main())
