"""Holds N AMQP connections open against a broker and reports its memory per connection.

    python3 scripts/bench/hold_connections.py HOST PORT BROKER_PID N

Each connection logs in as guest on "/" and opens one channel (200 handshakes at a time, with
pamqp's frames); the broker's resident memory (/proc/BROKER_PID) is read before and after, then
every connection closes with the close handshake. Raise the open-file limit first (ulimit -n).
"""
import asyncio, sys, time
from pamqp import commands as C, frame as pframe, header as pheader
from pamqp.heartbeat import Heartbeat

host, port, pid, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])

def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])

async def read_frame(reader, buf):
    while True:
        if buf:
            try:
                used, ch, f = pframe.unmarshal(bytes(buf))
                del buf[:used]
                return ch, f
            except Exception:
                pass
        data = await reader.read(65536)
        if not data:
            raise EOFError
        buf.extend(data)

async def expect(reader, buf, name):
    while True:
        ch, f = await read_frame(reader, buf)
        if f.name == name:
            return f
        if isinstance(f, Heartbeat):
            continue
        raise RuntimeError(f"expected {name}, got {f.name}")

async def open_one(sem):
    async with sem:
        reader, writer = await asyncio.open_connection(host, port)
        buf = bytearray()
        writer.write(b"AMQP\x00\x00\x09\x01")
        await expect(reader, buf, "Connection.Start")
        writer.write(pframe.marshal(C.Connection.StartOk(client_properties={}, mechanism="PLAIN", response="\0guest\0guest", locale="en_US"), 0))
        tune = await expect(reader, buf, "Connection.Tune")
        writer.write(pframe.marshal(C.Connection.TuneOk(channel_max=tune.channel_max, frame_max=tune.frame_max, heartbeat=0), 0))
        writer.write(pframe.marshal(C.Connection.Open(virtual_host="/"), 0))
        await expect(reader, buf, "Connection.OpenOk")
        writer.write(pframe.marshal(C.Channel.Open(), 1))
        await expect(reader, buf, "Channel.OpenOk")
        return reader, writer, buf

async def main():
    sem = asyncio.Semaphore(200)
    first = await open_one(sem)
    time.sleep(1)
    idle = rss_kib(pid)
    t = time.monotonic()
    conns = await asyncio.gather(*[open_one(sem) for _ in range(n)])
    opened = time.monotonic() - t
    time.sleep(2)
    held = rss_kib(pid)
    print(f"{n} connections in {opened:.1f} s; RSS idle {idle/1024:.0f} MiB, held {held/1024:.0f} MiB: {(held-idle)*1024/n:.0f} bytes each")
    for r, w, b in conns + [first]:
        w.write(pframe.marshal(C.Connection.Close(reply_code=200, reply_text="bye", class_id=0, method_id=0), 0))
    for r, w, b in conns + [first]:
        try:
            await asyncio.wait_for(expect(r, b, "Connection.CloseOk"), 30)
        except Exception:
            pass
        w.close()

asyncio.run(main())
