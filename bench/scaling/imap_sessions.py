#!/usr/bin/env python3
"""IMAP sessions for bench/scaling/run.sh (docs/SCALING.md).

  imap_sessions.py idle --server 127.0.0.1:21143 --sessions 4000 [--first 2]
      Logs in users u<first> .. (N of them) (token tok-<n>, as fill.sql makes them), selects
      INBOX and idles. Prints "ready N" once all idle, then counts the EXISTS
      lines they are sent until stdin closes, and prints "exists M".

  imap_sessions.py append --server 127.0.0.1:21143 --connections 4 --seconds 10
      Each connection logs in as its own user and APPENDs a small message to
      its INBOX in a closed loop; prints "appends N seconds S per_second R".
"""

import argparse
import asyncio
import sys
import time

MESSAGE = (
    "From: Bench <bench@example.org>\r\nTo: someone@bench.test\r\n"
    "Subject: scaling\r\nMessage-ID: <{n}@bench.example.org>\r\n\r\n"
    + "Lorem ipsum dolor sit amet. " * 20
    + "\r\n"
)


class Session:
    def __init__(self, reader, writer):
        self.reader, self.writer, self.tag = reader, writer, 0

    @classmethod
    async def login(cls, host, port, user):
        reader, writer = await asyncio.open_connection(host, port)
        session = cls(reader, writer)
        await reader.readline()  # greeting
        await session.run(f"LOGIN u{user}@bench.test tok-{user}")
        return session

    async def send(self, command):
        self.tag += 1
        tag = f"b{self.tag}"
        self.writer.write(f"{tag} {command}\r\n".encode())
        await self.writer.drain()
        return tag

    async def answer(self, tag):
        while True:
            line = await self.reader.readline()
            if not line:
                raise ConnectionError("closed")
            if line.startswith(tag.encode() + b" "):
                if not line.split(b" ")[1] == b"OK":
                    raise RuntimeError(line.decode().strip())
                return

    async def run(self, command):
        await self.answer(await self.send(command))


async def idle(host, port, sessions, first):
    gate = asyncio.Semaphore(50)

    async def open_one(user):
        async with gate:
            session = await Session.login(host, port, user)
            await session.run("SELECT INBOX")
            await session.send("IDLE")
            await session.reader.readline()  # "+ idling"
            return session

    opened = await asyncio.gather(*(open_one(user) for user in range(first, first + sessions)))
    print(f"ready {len(opened)}", flush=True)
    exists = 0

    async def count(session):
        nonlocal exists
        while True:
            line = await session.reader.readline()
            if not line:
                return
            if line.endswith(b" EXISTS\r\n"):
                exists += 1

    counters = [asyncio.create_task(count(s)) for s in opened]
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)  # until stdin closes
    for task in counters:
        task.cancel()
    print(f"exists {exists}", flush=True)


async def append(host, port, connections, seconds):
    deadline = time.monotonic() + seconds
    done = 0

    async def loop_one(user):
        nonlocal done
        session = await Session.login(host, port, user)
        n = 0
        while time.monotonic() < deadline:
            n += 1
            body = MESSAGE.format(n=f"{user}.{n}")
            tag = f"a{n}"
            session.writer.write(f"{tag} APPEND INBOX {{{len(body)}+}}\r\n{body}\r\n".encode())
            await session.writer.drain()
            await session.answer(tag)
            done += 1
        await session.run("LOGOUT")

    started = time.monotonic()
    await asyncio.gather(*(loop_one(user) for user in range(1, connections + 1)))
    elapsed = time.monotonic() - started
    print(f"appends {done} seconds {elapsed:.1f} per_second {done / elapsed:.0f}", flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["idle", "append"])
    parser.add_argument("--server", default="127.0.0.1:21143")
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--first", type=int, default=1, help="the first user (idle)")
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()
    host, port = args.server.rsplit(":", 1)
    if args.mode == "idle":
        asyncio.run(idle(host, int(port), args.sessions, args.first))
    else:
        asyncio.run(append(host, int(port), args.connections, args.seconds))


if __name__ == "__main__":
    main()
