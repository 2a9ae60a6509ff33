# SPDX-License-Identifier: Apache-2.0
"""An independent (pure Python) writer of Tart images: Apple LZ4 framing and the manifest, for
the tests that must not trust tart's own encoder to check its decoder."""
import hashlib
import json
import struct

MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
MiB = 1 << 20


def digest_of(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def apple_lz4_stored(data, block=64 * 1024):
    """Independent Apple LZ4 encoder: stored 'bv4-' blocks only, then 'bv4$'."""
    out = bytearray()
    for i in range(0, len(data), block):
        piece = data[i:i + block]
        out += b"bv4-" + struct.pack("<I", len(piece)) + piece
    out += b"bv4$"
    return bytes(out)


def tart_image(config_json, disk, nvram, chunk=MiB):
    """(manifest dict, {digest: bytes}) of a Tart image: config, Apple-LZ4 disk layers of
    `chunk` bytes each with Tart's annotations, NVRAM, and an OCI config stub."""
    blobs = {}

    def add(data):
        d = digest_of(data)
        blobs[d] = data
        return d
    layers = [{"mediaType": "application/vnd.cirruslabs.tart.config.v1",
               "digest": add(config_json), "size": len(config_json)}]
    for i in range(0, len(disk), chunk):
        piece = disk[i:i + chunk]
        blob = apple_lz4_stored(piece)
        layers.append({"mediaType": "application/vnd.cirruslabs.tart.disk.v2",
                       "digest": add(blob), "size": len(blob),
                       "annotations": {
                           "org.cirruslabs.tart.uncompressed-size": str(len(piece)),
                           "org.cirruslabs.tart.uncompressed-content-digest": digest_of(piece)}})
    layers.append({"mediaType": "application/vnd.cirruslabs.tart.nvram.v1",
                   "digest": add(nvram), "size": len(nvram)})
    stub = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Labels": {}}}).encode()
    manifest = {"schemaVersion": 2, "mediaType": MANIFEST_TYPE,
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                           "digest": add(stub), "size": len(stub)},
                "layers": layers,
                "annotations": {"org.cirruslabs.tart.uncompressed-disk-size": str(len(disk))}}
    return manifest, blobs
