"""The Batcher's grouping rules, with a fake forward pass (no model, no HTTP)."""

import asyncio
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from optbench.serve.batching import Batcher


def _run(coro):
    return asyncio.run(coro)


def _batcher(max_batch=8, max_wait_s=60.0):
    sizes = []

    def forward(x):
        sizes.append(len(x))
        return x.sum(axis=1, keepdims=True)

    return Batcher(forward, ThreadPoolExecutor(1), max_batch, max_wait_s), sizes


def test_lone_request_does_not_wait_for_company():
    async def main():
        b, sizes = _batcher(max_wait_s=60.0)  # a blind wait would take a minute
        b.start()
        out = await asyncio.wait_for(b.submit(np.ones((1, 3))), timeout=10)
        await b.stop()
        return out, sizes

    out, sizes = _run(main())
    assert out.tolist() == [[3.0]] and sizes == [1]


def test_queued_requests_are_grouped_split_at_max_batch_and_answered_in_order():
    async def main():
        b, sizes = _batcher(max_batch=8, max_wait_s=0.0)
        b.start()
        xs = [np.full((n, 2), float(i)) for i, n in enumerate([3, 3, 3, 1])]
        outs = await asyncio.gather(*(b.submit(x) for x in xs))
        await b.stop()
        return xs, outs, sizes

    xs, outs, sizes = _run(main())
    for x, out in zip(xs, outs, strict=True):
        assert out.shape == (len(x), 1) and (out == x.sum(1, keepdims=True)).all()
    assert sum(sizes) == 10 and max(sizes) <= 8 and len(sizes) < 4


def test_requests_still_arriving_are_waited_for():
    async def main():
        b, sizes = _batcher(max_batch=8, max_wait_s=60.0)
        b.start()

        async def first():              # a request whose body had arrived: queued at once
            return await b.submit(np.ones((1, 2)))

        async def late():
            with b.arriving():          # body being read: the batch should wait for it
                await asyncio.sleep(0.05)
            return await b.submit(np.ones((1, 2)))

        results = await asyncio.wait_for(asyncio.gather(first(), late()), 10)
        await b.stop()
        return results, sizes

    results, sizes = _run(main())
    assert [r.tolist() for r in results] == [[[2.0]], [[2.0]]] and sizes == [2]


def test_a_failed_forward_pass_reaches_every_request_in_it():
    async def main():
        def broken(x):
            raise RuntimeError("kernel exploded")

        b = Batcher(broken, ThreadPoolExecutor(1), 8, 0.0)
        b.start()
        results = await asyncio.gather(b.submit(np.ones((1, 2))), b.submit(np.ones((1, 2))),
                                       return_exceptions=True)
        await b.stop()
        return results

    assert all(isinstance(r, RuntimeError) for r in _run(main()))
