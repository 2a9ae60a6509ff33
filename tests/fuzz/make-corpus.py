#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Write seed inputs for fuzz-dhcp: DHCP payloads (DISCOVER, REQUEST, with overload, DUID)."""
import os
import struct
import sys

MAC = bytes.fromhex("525400123456")


def bootp(msgtype, opts=b"", ciaddr=0, file=b"", sname=b""):
    hdr = struct.pack("!BBBBIHHIIII", 1, 1, 6, 0, 0x1234, 0, 0x8000, ciaddr, 0, 0, 0)
    hdr += MAC + bytes(10)
    hdr += sname.ljust(64, b"\0") + file.ljust(128, b"\0")
    return hdr + b"\x63\x82\x53\x63" + bytes([53, 1, msgtype]) + opts + b"\xff"


out = sys.argv[1]
os.makedirs(out, exist_ok=True)
seeds = {
    "discover": bootp(1, bytes([12, 4]) + b"vm01" + bytes([55, 3, 1, 3, 6])),
    "request": bootp(3, bytes([50, 4, 192, 168, 64, 5, 54, 4, 192, 168, 64, 1])),
    "renew": bootp(3, ciaddr=0xC0A84005),
    "duid": bootp(1, bytes([61, 14, 255, 0, 0, 0, 1, 0, 4]) + bytes(7)),
    "overload": bootp(3, bytes([52, 1, 3]), file=bytes([50, 4, 192, 168, 64, 5, 255]),
                      sname=bytes([54, 4, 192, 168, 64, 1, 255])),
    "release": bootp(7, ciaddr=0xC0A84005),
}
for name, data in seeds.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
