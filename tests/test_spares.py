"""The client proxy's spare worker connections (core/spares.py): how many are kept, when
they are replaced and dropped. The pool's logic alone, with links that are made when the
test says so; the spares over real sockets are exercised by every connect test."""

from __future__ import annotations

import asyncio

from bconnect.core.spares import Spares


class FakeLink:
    def __init__(self) -> None:
        self.is_open = True
        self.aborted = False

    def abort(self) -> None:
        self.aborted = True
        self.is_open = False


class Maker:
    """``open_link`` whose links are made (or fail) when the test says."""

    def __init__(self) -> None:
        self.pending: list[asyncio.Future[FakeLink]] = []
        self.made: list[FakeLink] = []

    async def open(self) -> FakeLink:
        future: asyncio.Future[FakeLink] = asyncio.get_running_loop().create_future()
        self.pending.append(future)
        return await future

    async def finish_all(self, fail: bool = False) -> None:
        await asyncio.sleep(0)  # let the tasks start
        for future in self.pending:
            if future.cancelled():  # its spare was dropped meanwhile
                continue
            if fail:
                future.set_exception(OSError("worker unreachable"))
            else:
                link = FakeLink()
                self.made.append(link)
                future.set_result(link)
        self.pending.clear()
        await asyncio.sleep(0)


async def test_one_spare_is_kept_and_taken_ready() -> None:
    maker = Maker()
    spares = Spares(maker.open, max_age=60)  # type: ignore[arg-type]
    spares.fill()
    spares.fill()  # already there
    await maker.finish_all()
    assert len(spares) == 1
    link = await spares.take()
    assert link is maker.made[0] and spares.wanted == 1
    assert await spares.take() is None  # none left until refilled
    spares.close()


async def test_a_client_that_waits_for_a_spare_makes_more_kept_and_age_takes_them_back() -> None:
    maker = Maker()
    spares = Spares(maker.open, max_age=0.05, most=3)  # type: ignore[arg-type]
    for wanted in (2, 3, 3):  # each client finds its spare still being made: at most 3
        spares.fill()
        taking = asyncio.ensure_future(spares.take())
        await asyncio.sleep(0)
        assert spares.wanted == wanted
        await maker.finish_all()
        assert (await taking) is not None
    spares.fill()
    await maker.finish_all()
    assert len(spares) == 3
    ready = [link for link in maker.made if not link.aborted][-3:]
    # unused, they grow old: each is replaced by one fewer, down to one
    while spares.wanted > 1:
        await asyncio.sleep(0.06)
        await maker.finish_all()
    assert len(spares) == 1
    assert all(link.aborted for link in ready)
    spares.close()


async def test_a_failed_or_dropped_spare_is_not_used_and_close_drops_all() -> None:
    maker = Maker()
    spares = Spares(maker.open, max_age=60)  # type: ignore[arg-type]
    spares.fill()
    await maker.finish_all(fail=True)
    assert await spares.take() is None  # the caller dials anew and reports why
    spares.fill()
    await maker.finish_all()
    maker.made[-1].is_open = False  # the worker dropped it meanwhile
    assert await spares.take() is None and maker.made[-1].aborted
    spares.wanted = 2
    spares.fill()
    await maker.finish_all()
    spares.fill()  # nothing more: two are there
    spares.close()
    assert len(spares) == 0 and all(link.aborted for link in maker.made)
    spares.fill()  # closed: makes no more
    assert len(spares) == 0 and not maker.pending


async def test_a_spare_made_while_its_taker_gave_up_is_dropped() -> None:
    maker = Maker()
    spares = Spares(maker.open, max_age=60)  # type: ignore[arg-type]
    spares.fill()
    taking = asyncio.ensure_future(spares.take())
    await asyncio.sleep(0)
    taking.cancel()  # the local client went away while its spare was being made
    await asyncio.sleep(0)
    await maker.finish_all()
    assert taking.cancelled() and not maker.made  # the spare was dropped, not left open
    spares.close()
