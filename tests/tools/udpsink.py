#!/usr/bin/env python3
"""udpsink.py: receive UDP datagrams and write them to a pcap file, as if captured.

    udpsink.py PORT OUT.pcap READY_FILE [--bind ADDR] [--idle SECS]

Binds ADDR:PORT (default 127.0.0.1), writes READY_FILE once listening, and stores every
datagram as Ethernet/IPv4/UDP 127.0.0.1:9 -> 127.0.0.1:PORT with the receive time.
Exits on SIGTERM/SIGINT, or --idle seconds after the last datagram (the clock starts
with the first one, so a slow exporter is waited for). Tests use it to hand
an exporter's exact datagrams to tshark, with no capture drops in between."""
import signal
import socket
import struct
import sys
import time


def main():
    args = sys.argv[1:]
    bind, idle = "127.0.0.1", 0.0
    if "--bind" in args:
        i = args.index("--bind"); bind = args[i + 1]; del args[i:i + 2]
    if "--idle" in args:
        i = args.index("--idle"); idle = float(args[i + 1]); del args[i:i + 2]
    port, out, ready = int(args[0]), args[1], args[2]
    fam = socket.AF_INET6 if ":" in bind else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 20)
    s.bind((bind, port))
    s.settimeout(0.2)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    f = open(out, "wb")
    f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    open(ready, "w").close()
    last = time.time()
    n = 0
    while not stop:
        try:
            data = s.recv(65535)
        except socket.timeout:
            if idle and n and time.time() - last > idle:
                break
            continue
        now = time.time()
        last = now
        udp = struct.pack("!HHHH", 9, port, 8 + len(data), 0) + data
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), n & 0xFFFF, 0, 64, 17, 0,
                         bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1]))
        frame = b"\x00" * 12 + b"\x08\x00" + ip + udp
        sec = int(now)
        f.write(struct.pack("<IIII", sec, int((now - sec) * 1e6), len(frame), len(frame)))
        f.write(frame)
        n += 1
    f.close()
    print(f"udpsink: {n} datagrams", file=sys.stderr)


if __name__ == "__main__":
    main()
