import asyncio

from ams_ray.service.packet_outbox import PacketOutbox


def test_a_poll_gets_the_next_packet_at_once_or_when_it_is_posted():
    async def scenario():
        outbox = PacketOutbox()
        assert await outbox.after(0, timeout_s=0.01) is None
        waiting = asyncio.create_task(outbox.after(0, timeout_s=30))
        await asyncio.sleep(0)
        assert outbox.polls == 1
        await outbox.post(1, b"p1", due_chunk=2)
        assert await waiting == (1, b"p1", 2) and outbox.polls == 0
        await outbox.post(2, b"p2", due_chunk=3)
        return outbox, await outbox.after(1, timeout_s=1), await outbox.after(1, timeout_s=1)

    outbox, first, again = asyncio.run(scenario())
    assert first == again == (2, b"p2", 3)
    assert (outbox.posted, outbox.resent, outbox.superseded) == (2, 1, False), "asked again: one resend"


def test_a_device_behind_the_kept_packets_is_told_it_was_superseded():
    async def scenario():
        outbox = PacketOutbox(size=3)
        for sequence in range(1, 7):
            await outbox.post(sequence, f"p{sequence}".encode(), sequence)
        return outbox, await outbox.after(2, timeout_s=1)

    outbox, entry = asyncio.run(scenario())
    assert entry[0] == 4 and [e[0] for e in outbox.entries] == [4, 5, 6]
    assert outbox.take_superseded() and not outbox.take_superseded()
