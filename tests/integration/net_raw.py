# SPDX-License-Identifier: Apache-2.0
"""Raw packets for the networking tests, run as a script inside a test namespace:

    net_raw.py spoof SRC_MAC DST_MAC SRC_IP DST_IP TAG   UDP datagram TAG to DST_IP:9999, 3 times
    net_raw.py dhcp-flood OWN_MAC WANT_IP                300 DHCPREQUESTs for WANT_IP (random and
                                                         own chaddr) plus garbage of every size
    net_raw.py dns-server ADDR ANSWER                    answer every A query on ADDR:53 with ANSWER
    net_raw.py dns-query SERVER NAME                     print the A record SERVER gives for NAME
"""
import os
import socket
import struct
import sys


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff


def mac(m):
    return bytes.fromhex(m.replace(":", ""))


def ipv4_udp(src_ip, dst_ip, sport, dport, payload):
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0, src_ip, dst_ip)
    return hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:] + udp


def sender(ifname="eth0"):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((ifname, 0))
    return s


def spoof(src_mac, dst_mac, src_ip, dst_ip, tag):
    frame = (mac(dst_mac) + mac(src_mac) + b"\x08\x00" +
             ipv4_udp(socket.inet_aton(src_ip), socket.inet_aton(dst_ip), 40000, 9999,
                      tag.encode()))
    s = sender()
    for _ in range(3):
        s.send(frame)


def dhcp_flood(own_mac, want_ip):
    own, want = mac(own_mac), socket.inet_aton(want_ip)
    s = sender()
    for i in range(300):
        chaddr = own if i % 2 else os.urandom(6)
        src = chaddr if i % 3 else own
        bootp = (struct.pack("!BBBBIHHIIII", 1, 1, 6, 0, i, 0, 0x8000, 0, 0, 0, 0) + chaddr +
                 bytes(202) + b"\x63\x82\x53\x63" + bytes([53, 1, 3, 50, 4]) + want + b"\xff")
        s.send(b"\xff" * 6 + src + b"\x08\x00" + ipv4_udp(bytes(4), b"\xff" * 4, 68, 67, bootp))
        s.send(b"\xff" * 6 + own + b"\x08\x00" + os.urandom(i % 600))


def dns_server(addr, answer):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((addr, 53))
    while True:
        q, peer = s.recvfrom(512)
        if len(q) < 12:
            continue
        s.sendto(q[:2] + b"\x81\x80" + q[4:6] + b"\x00\x01\x00\x00\x00\x00" + q[12:] +
                 b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04" +
                 socket.inet_aton(answer), peer)


def dns_query(server, name):
    q = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
    q += b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\x00\x00\x01\x00\x01"
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(3)
    s.sendto(q, (server, 53))
    print(socket.inet_ntoa(s.recvfrom(512)[0][-4:]))


if __name__ == "__main__":
    {"spoof": spoof, "dhcp-flood": dhcp_flood, "dns-server": dns_server,
     "dns-query": dns_query}[sys.argv[1]](*sys.argv[2:])
