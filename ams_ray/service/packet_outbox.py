"""A stream's update packets between being made and being fetched by its device's long-poll.

The downlink never waits for an upload: a packet is posted when its round ends and a poll
takes it at once, or as soon as it comes. The newest `size` packets are kept, so a device
whose poll reply was lost can ask again from the same number and get the same packet
(counted as a resend). A device further behind than that cannot apply the packets still
here (each builds on one it missed): the outbox says so (`superseded`), and the stream's
next packet patches the pretrained model instead.
"""

from __future__ import annotations

import asyncio

OUTBOX_SIZE = 8


class PacketOutbox:
    def __init__(self, size: int = OUTBOX_SIZE) -> None:
        self.size = size
        self.entries: list[tuple[int, bytes, int]] = []  # (sequence, packet, due chunk), oldest first
        self.mail = asyncio.Condition()
        self.handed_out = 0  # the newest packet sequence a poll has returned
        self.posted = 0
        self.resent = 0  # returned again: the device never got the first reply
        self.superseded = False  # a device missed packets no longer kept
        self.polls = 0  # long-polls waiting now
        self.closed = False  # the stream left this host: waiting polls are answered with nothing

    async def post(self, sequence: int, packet: bytes, due_chunk: int) -> None:
        """A packet for the device to fetch; `due_chunk`: the upload that made its round due."""
        self.entries = [*self.entries[-(self.size - 1):], (sequence, packet, due_chunk)]
        self.posted += 1
        async with self.mail:
            self.mail.notify_all()

    async def after(self, sequence: int, timeout_s: float) -> tuple[int, bytes, int] | None:
        """The oldest packet numbered above `sequence` (with its number and its due chunk),
        waiting at most `timeout_s` for one."""
        def first() -> tuple[int, bytes, int] | None:
            return next((entry for entry in self.entries if entry[0] > sequence), None)

        self.polls += 1
        try:
            async with self.mail:
                try:
                    await asyncio.wait_for(self.mail.wait_for(lambda: self.closed or first() is not None), timeout_s)
                except asyncio.TimeoutError:
                    return None
                entry = first()
                if entry is None:  # closed: the device asks again, and reaches the stream's new host
                    return None
                if entry[0] > sequence + 1:
                    self.superseded = True  # packets after `sequence` were dropped
                if entry[0] <= self.handed_out:
                    self.resent += 1
                self.handed_out = max(self.handed_out, entry[0])
                return entry
        finally:
            self.polls -= 1

    async def close(self) -> None:
        """Answer every waiting poll now (with nothing) and every later one at once."""
        self.closed = True
        async with self.mail:
            self.mail.notify_all()

    def take_superseded(self) -> bool:
        """Whether a device missed packets no longer kept since the last call."""
        superseded, self.superseded = self.superseded, False
        return superseded
