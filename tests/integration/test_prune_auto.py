# SPDX-License-Identifier: Apache-2.0
"""Automatic pruning (triggered by clone, as in Tart) on a small tmpfs TART_HOME: the volume's
free space is known exactly, so the need, and therefore exactly which cache entries go, is too.

clone asks for (source apparent - source allocated) bytes, capped by --prune-limit, after the
copy; the need is that minus the free space; cache digests go oldest first until more than the
need is reclaimed, never the source, never an entry in use, and not at all when all candidates
together are not enough."""
import time

import pytest

from prune_fixtures import (MIB, free_bytes, holding, make_image, make_vm, surviving_digests,
                            tmpfs)

TMPFS_MIB = 48


@pytest.fixture
def small_home(tart):
    with tmpfs(tart.home, TMPFS_MIB):
        yield tart


def four_images(home):
    """Four 4 MiB images, A oldest to D newest."""
    now = time.time()
    return [make_image(home, "img", name, now - (10 - i) * 86400, tags=[name.lower()],
                       data_bytes=4 * MIB)
            for i, name in enumerate("ABCD")]


def source_vm(home, need):
    """A local VM whose clone asks auto-prune for `need` bytes more than the volume has free
    (give or take the few KiB the clone's own small files take)."""
    # Sparse disk: the clone requests its hole size; config.json and nvram.bin roughly cancel.
    return make_vm(home, "src", time.time(), sparse_bytes=free_bytes(home) + need)


def test_auto_prune_frees_oldest_first(small_home):
    t = small_home
    a, b, c, d = four_images(t.home)
    source_vm(t.home, 6 * MIB)  # A (4 MiB) is not enough, A+B (8 MiB) is
    p = t.run("clone", "src", "dst")
    assert surviving_digests(t.home) == {c, d}
    assert "TART_NO_AUTO_PRUNE" in p.stderr and "pruning" in p.stderr
    assert t.run("list", "--source", "local", "-q").stdout == "dst\nsrc\n"
    assert not (t.home / "tmp").exists() or list((t.home / "tmp").iterdir()) == []


def test_auto_prune_disabled_by_env_even_empty(small_home):
    t = small_home
    imgs = four_images(t.home)
    source_vm(t.home, 6 * MIB)
    t.run("clone", "src", "dst", env={"TART_NO_AUTO_PRUNE": ""})
    assert surviving_digests(t.home) == set(imgs)


def test_auto_prune_respects_prune_limit(small_home):
    t = small_home
    imgs = four_images(t.home)
    source_vm(t.home, 6 * MIB)
    # A limit of 0 GiB asks for nothing at all.
    t.run("clone", "--prune-limit", "0", "src", "dst")
    assert surviving_digests(t.home) == set(imgs)


def test_auto_prune_refuses_when_candidates_are_not_enough(small_home):
    t = small_home
    imgs = four_images(t.home)
    source_vm(t.home, 20 * MIB)  # all four hold 16 MiB
    p = t.run("clone", "src", "dst")
    assert surviving_digests(t.home) == set(imgs)
    assert "not pruning" in p.stderr


def test_auto_prune_never_deletes_the_source(small_home):
    t = small_home
    now = time.time()
    a = make_image(t.home, "img", "A", now - 9 * 86400, tags=["a"], data_bytes=4 * MIB)
    b = make_image(t.home, "img", "B", now - 8 * 86400, tags=["b"], data_bytes=4 * MIB)
    # The source: 8 MiB of data and a large hole. With it, candidates would hold 16 MiB;
    # without it 8 MiB, less than the ~10 MiB needed: nothing may be deleted. The source and
    # its clone each take 8 MiB of the volume before auto-prune measures the free space.
    hole = free_bytes(t.home) - 16 * MIB + 10 * MIB
    s = make_image(t.home, "img", "S", now - 10 * 86400, tags=["s"], data_bytes=8 * MIB,
                   sparse_bytes=hole)
    p = t.run("clone", "127.0.0.1:5000/img:s", "dst")
    assert surviving_digests(t.home) == {a, b, s}
    assert "not pruning" in p.stderr
    assert (t.home / "vms" / "dst" / "disk.img").stat().st_size == 8 * MIB + hole


def test_auto_prune_skips_entries_in_use(small_home):
    t = small_home
    a, b, c, d = four_images(t.home)
    source_vm(t.home, 6 * MIB)
    with holding(a, "use"):  # the oldest is being read (e.g. cloned) by someone else
        t.run("clone", "src", "dst")
        assert surviving_digests(t.home) == {a, d}
        assert (a / "disk.img").stat().st_blocks * 512 >= 4 * MIB
