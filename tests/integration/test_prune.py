# SPDX-License-Identifier: Apache-2.0
"""`tart prune` and the OCI cache GC, tested like data-loss code: entries are built on disk with
known sizes and access times, and every test asserts exactly which entries survive."""
import os
import time

import pytest

from prune_fixtures import (DAY, GIB, MIB, accessed, allocated, digest_of, holding, image_name,
                            make_image, make_vm, surviving_digests, symlinks)


def test_bad_flags_exit_64_and_delete_nothing(tart):
    now = time.time()
    old = make_image(tart.home, "img", "old", now - 100 * DAY, tags=["v1"])
    vm = make_vm(tart.home, "vm", now - 100 * DAY)
    cases = [
        ([], "at least one pruning criteria must be specified"),
        (["--entries", "vms"], "at least one pruning criteria must be specified"),
        (["--entries", "images", "--older-than", "0"], "'images' is invalid for '--entries"),
        # as swift-argument-parser: a separate "-1" is an option, so the value is missing
        (["--older-than", "-1"], "Missing value for '--older-than"),
        (["--older-than=-1"], "invalid for '--older-than'"),
        (["--older-than", "x"], "invalid for '--older-than'"),
        (["--older-than", ""], "invalid for '--older-than'"),
        (["--space-budget", "1.5"], "invalid for '--space-budget'"),
        (["--space-budget", "18446744073709551615"], "invalid for '--space-budget'"),
        (["--older-than", "1", "extra"], "Error:"),
        (["--bogus"], "Error:"),
        (["--cache-budget", "1", "--space-budget", "1"],
         "--cache-budget and --space-budget are mutually exclusive"),
    ]
    for args, msg in cases:
        p = tart.run("prune", *args, check=False)
        assert p.returncode == 64, (args, p.stderr)
        assert msg in p.stderr, (args, p.stderr)
        assert p.stdout == ""
    assert surviving_digests(tart.home) == {old}
    assert (vm / "disk.img").exists()


def test_cache_budget_is_deprecated_alias(tart):
    now = time.time()
    a = make_image(tart.home, "img", "a", now - 10)
    p = tart.run("prune", "--cache-budget", "0")
    assert "--cache-budget is deprecated, please use --space-budget" in p.stderr
    assert a not in surviving_digests(tart.home)


def test_older_than_boundaries(tart):
    now = time.time()
    # "older than 7 days" = last access <= now - 7 days; margins cover the process start-up.
    gone1 = make_image(tart.home, "img", "8days", now - 7 * DAY - 60, tags=["old"])
    gone2 = make_image(tart.home, "img", "epoch", 0)
    kept1 = make_image(tart.home, "img", "almost7", now - 7 * DAY + 600, tags=["recent"])
    kept2 = make_image(tart.home, "other/ns", "now", now, tags=["now"])
    kept3 = make_image(tart.home, "img", "future", now + 3600)  # unreferenced: GC takes it
    tart.run("prune", "--older-than", "7")
    assert surviving_digests(tart.home) == {kept1, kept2, kept3}
    # Access times of survivors are untouched by prune (it never "opens" them).
    assert accessed(kept1) == pytest.approx(now - 7 * DAY + 600, abs=1)
    # Tart leaves the tag of a pruned digest dangling; the GC removes it later.
    old_tag = gone1.parent / "old"
    assert old_tag.is_symlink() and not old_tag.exists()
    assert not gone2.exists()
    assert tart.run("list", "--source", "oci", "-q").stdout.splitlines() == sorted([
        "127.0.0.1:5000/img:recent", image_name("img", "almost7"), image_name("img", "future"),
        "127.0.0.1:5000/other/ns:now", image_name("other/ns", "now")])
    tart.run("prune", "--gc")
    assert not old_tag.is_symlink()
    assert (kept1.parent / "recent").is_symlink()
    assert surviving_digests(tart.home) == {kept1, kept2}


def test_older_than_zero_takes_everything_not_in_the_future(tart):
    now = time.time()
    a = make_image(tart.home, "img", "a", now - 5)
    b = make_image(tart.home, "img", "b", now + 3600)
    tart.run("prune", "--older-than", "0")
    assert surviving_digests(tart.home) == {b}
    assert not a.exists()


def test_space_budget_greedy_keeps_later_smaller_entry(tart):
    now = time.time()
    # Newest first: A 1 GiB, B 2 GiB, C 0.5 GiB, D 1 GiB, E 1 GiB; budget 3 GiB.
    # A fits (2 GiB left), B does not, C fits (1.5 left), D fits (0.5 left), E does not.
    a = make_image(tart.home, "img", "A", now - 1 * DAY, tags=["a"], falloc_bytes=GIB)
    b = make_image(tart.home, "img", "B", now - 2 * DAY, tags=["b"], falloc_bytes=2 * GIB)
    c = make_image(tart.home, "img", "C", now - 3 * DAY, falloc_bytes=GIB // 2)
    d = make_image(tart.home, "img", "D", now - 4 * DAY, falloc_bytes=GIB)
    e = make_image(tart.home, "img", "E", now - 5 * DAY, falloc_bytes=GIB)
    assert allocated(a) + allocated(c) + allocated(d) <= 3 * GIB
    assert allocated(a) + allocated(b) > 3 * GIB
    tart.run("prune", "--space-budget", "3")
    assert surviving_digests(tart.home) == {a, c, d}
    assert not b.exists() and not e.exists()


def test_combined_older_than_applies_first(tart):
    now = time.time()
    # The 10-day-old entry goes by age and is then not charged to the 2 GiB budget, so the two
    # newest 1 GiB entries both fit and only the third newest goes by budget.
    old = make_image(tart.home, "img", "old", now - 10 * DAY, falloc_bytes=GIB)
    n1 = make_image(tart.home, "img", "n1", now - 1 * DAY, falloc_bytes=GIB - MIB)
    n2 = make_image(tart.home, "img", "n2", now - 2 * DAY, falloc_bytes=GIB - MIB)
    n3 = make_image(tart.home, "img", "n3", now - 3 * DAY, falloc_bytes=GIB - MIB)
    tart.run("prune", "--older-than", "7", "--space-budget", "2")
    assert surviving_digests(tart.home) == {n1, n2}
    assert not old.exists() and not n3.exists()


def test_space_budget_zero_removes_every_cache_entry_but_no_vm(tart):
    now = time.time()
    make_image(tart.home, "img", "a", now, data_bytes=MIB, tags=["latest"])
    make_image(tart.home, "img", "b", now - DAY)
    vm = make_vm(tart.home, "vm", 0, data_bytes=MIB)
    tart.run("prune", "--space-budget", "0")
    assert surviving_digests(tart.home) == set()
    assert (vm / "disk.img").stat().st_size == MIB
    assert tart.run("list", "-q").stdout == "vm\n"


def test_entries_vms_skips_running_and_leaves_caches(tart):
    now = time.time()
    running = make_vm(tart.home, "running", now - 30 * DAY)
    stopped = make_vm(tart.home, "stopped", now - 30 * DAY)
    suspended = make_vm(tart.home, "suspended", now - 30 * DAY)
    (suspended / "state.vzvmsave").write_bytes(b"x")
    os.utime(suspended, (now - 30 * DAY, now - 30 * DAY))
    fresh = make_vm(tart.home, "fresh", now - 60)
    cached = make_image(tart.home, "img", "old", now - 30 * DAY)
    with holding(running, "run"):
        tart.run("prune", "--entries", "vms", "--older-than", "7")
        # Suspended VMs are pruned as in Tart (only running ones are protected).
        assert sorted(p.name for p in (tart.home / "vms").iterdir()) == ["fresh", "running"]
        assert (running / "disk.img").exists() and (fresh / "disk.img").exists()
        assert not stopped.exists() and not suspended.exists()
        # Running VMs are left out of the space budget too.
        tart.run("prune", "--entries", "vms", "--space-budget", "0")
        assert sorted(p.name for p in (tart.home / "vms").iterdir()) == ["running"]
    assert surviving_digests(tart.home) == {cached}
    tart.run("prune", "--entries", "vms", "--older-than", "7")
    assert not running.exists()
    # Nothing half-deleted is left behind in tmp/ either.
    assert [p for p in (tart.home / "tmp").iterdir()] == []


def test_entry_in_use_survives_prune_gc_and_delete(tart):
    now = time.time()
    used = make_image(tart.home, "img", "used", 0)  # oldest and unreferenced
    other = make_image(tart.home, "img", "other", now - 10 * DAY, tags=["t"])
    with holding(used, "use"):
        tart.run("prune", "--gc")
        tart.run("prune", "--older-than", "0")
        tart.run("prune", "--space-budget", "0")
        assert surviving_digests(tart.home) == {used}
        p = tart.run("delete", image_name("img", "used"), check=False)
        assert p.returncode == 1 and "is in use" in p.stderr
        assert surviving_digests(tart.home) == {used}
        assert (used / "disk.img").exists() and (used / "config.json").exists()
    assert not other.exists()
    # Once released, the unreferenced entry is collected by the GC.
    tart.run("prune", "--gc")
    assert surviving_digests(tart.home) == set()


def test_local_vm_in_use_cannot_be_deleted_or_renamed(tart):
    """While a clone copies from a VM (shared flock), the VM can be neither deleted nor
    renamed: a rename plus a new VM under the old name would give the clone a mix of both."""
    vm = make_vm(tart.home, "vm", time.time())
    with holding(vm, "use"):
        p = tart.run("delete", "vm", check=False)
        assert p.returncode == 1 and 'VM "vm" is in use' in p.stderr
        p = tart.run("rename", "vm", "other", check=False)
        assert p.returncode == 1 and 'VM "vm" is in use' in p.stderr
        assert tart.run("list", "-q").stdout == "vm\n"
        p = tart.run("prune", "--entries", "vms", "--space-budget", "0")
        assert (vm / "disk.img").exists()
    tart.run("delete", "vm")
    assert not vm.exists()


def test_gc_rules(tart):
    now = time.time()
    linked = make_image(tart.home, "img", "linked", now, tags=["v1", "v2"])
    orphan = make_image(tart.home, "img", "orphan", now)
    pinned = make_image(tart.home, "img", "pinned", now - DAY, pinned=True)
    repo = linked.parent
    os.symlink(repo / digest_of("gone"), repo / "dangling")
    leftover = repo / ".deleting-ABC"  # an interrupted deletion on a cross-device TART_HOME
    (leftover / "sub").mkdir(parents=True)
    (leftover / "sub" / "disk.img").write_bytes(b"x" * 100)
    tart.run("prune", "--gc")
    assert surviving_digests(tart.home) == {linked, pinned}
    assert symlinks(tart.home) == {repo / "v1", repo / "v2"}
    assert not orphan.exists() and not leftover.exists()
    # GC keeps .explicitly-pulled digests; prune does not care about the marker.
    tart.run("prune", "--older-than", "0")
    assert surviving_digests(tart.home) == set()


def test_delete_digest_removes_its_dangling_tags(tart):
    now = time.time()
    a = make_image(tart.home, "img", "a", now, tags=["latest", "v1"])
    b = make_image(tart.home, "img", "b", now, tags=["v2"])
    tart.run("delete", image_name("img", "a"))
    assert surviving_digests(tart.home) == {b}
    assert symlinks(tart.home) == {b.parent / "v2"}
    # Deleting the last tag of b lets the GC collect b.
    tart.run("delete", "127.0.0.1:5000/img:v2")
    assert surviving_digests(tart.home) == set()
    assert not a.exists()


def test_symlinks_out_of_the_cache_are_never_followed(tart, tmp_path):
    now = time.time()
    # A VM-looking directory outside the cache, reached through a tag symlink...
    outside = tmp_path / "outside" / digest_of("x")
    from prune_fixtures import _fill_vm_dir
    _fill_vm_dir(outside, data_bytes=4096)
    os.utime(outside, (0, 0))
    repo = tart.home / "cache" / "OCIs" / "127.0.0.1%3A5000" / "img"
    repo.mkdir(parents=True)
    os.symlink(outside, repo / "escape")
    os.symlink(outside, repo / digest_of("x"))  # a "digest dir" that is a symlink
    # ...and a whole host directory that is a symlink to a tree holding digest dirs.
    foreign = tmp_path / "foreign"
    _fill_vm_dir(foreign / "ns" / digest_of("y"))
    os.utime(foreign / "ns" / digest_of("y"), (0, 0))
    os.symlink(foreign, tart.home / "cache" / "OCIs" / "evil.example")
    inside = make_image(tart.home, "img", "inside", 0)
    tart.run("prune", "--gc", "--older-than", "0", "--space-budget", "0")
    assert not inside.exists()
    for d in (outside, foreign / "ns" / digest_of("y")):
        assert sorted(p.name for p in d.iterdir()) == ["config.json", "disk.img", "nvram.bin"]
    tart.run("delete", "127.0.0.1:5000/img:escape")
    assert not (repo / "escape").is_symlink()
    assert (outside / "disk.img").exists()


def test_prune_is_atomic_and_leaves_no_staging(tart):
    """Deleted entries are moved into tmp/ and removed there; nothing remains anywhere."""
    now = time.time()
    a = make_image(tart.home, "img", "a", 0, data_bytes=2 * MIB, tags=["t"])
    b = make_image(tart.home, "img", "b", now)
    tart.run("prune", "--older-than", "1")
    assert surviving_digests(tart.home) == {b}
    assert list((tart.home / "tmp").iterdir()) == []
    assert sorted(p.name for p in a.parent.iterdir()) == sorted([b.name, "t"])


DELETER = """
import fcntl, os, shutil, sys
path, trash = sys.argv[1], sys.argv[2]
fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
print('locked', flush=True)
sys.stdin.readline()
os.rename(path, trash)
shutil.rmtree(trash)
"""


def test_clone_never_copies_an_image_being_deleted(tart):
    """A deleter (prune, GC, delete) holds the exclusive lock while it moves an image away;
    a clone that opened the image meanwhile waits, then finds it gone: exit 2, no new VM."""
    import subprocess
    import sys
    s = make_image(tart.home, "img", "s", time.time(), tags=["s"], data_bytes=MIB)
    deleter = subprocess.Popen([sys.executable, "-c", DELETER, str(s),
                                str(tart.home / "tmp" / "delete-test")],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    clone = None
    try:
        assert deleter.stdout.readline().strip() == "locked"
        clone = tart.popen("clone", "127.0.0.1:5000/img:s", "dst", stderr=subprocess.PIPE,
                           text=True)
        time.sleep(1)
        # Still waiting for the lock (a clone that ignored it would have finished by now).
        assert clone.poll() is None
        deleter.stdin.write("go\n")
        deleter.stdin.flush()
        assert deleter.wait(timeout=30) == 0
        _, err = clone.communicate(timeout=30)
        assert clone.returncode == 2, err
        assert "does not exist" in err
    finally:
        for p in (deleter, clone):
            if p and p.poll() is None:
                p.kill()
                p.wait()
    assert not (tart.home / "vms" / "dst").exists()
    assert list((tart.home / "tmp").iterdir()) == []


def test_symlinked_local_vm_delete_and_prune_never_touch_the_target(tart, tmp_path):
    """vms/<name> may be a symlink to a VM kept on another disk: `delete` removes the link
    only; `prune --entries vms` never deletes through it."""
    from prune_fixtures import _fill_vm_dir
    target = tmp_path / "elsewhere" / "vm"
    _fill_vm_dir(target, data_bytes=4096)
    os.utime(target, (0, 0))
    (tart.home / "vms").mkdir()
    os.symlink(target, tart.home / "vms" / "linked")
    tart.run("prune", "--entries", "vms", "--older-than", "0")
    assert (tart.home / "vms" / "linked").is_symlink()
    tart.run("rename", "linked", "moved")
    assert os.readlink(tart.home / "vms" / "moved") == str(target)
    tart.run("delete", "moved")
    assert list((tart.home / "vms").iterdir()) == []
    assert sorted(p.name for p in target.iterdir()) == ["config.json", "disk.img", "nvram.bin"]


def test_deletion_when_tmp_is_another_filesystem(tart):
    """rename() into tmp/ fails with EXDEV: entries are renamed to a hidden sibling instead,
    which listings ignore and which is removed right away (or by the GC after a crash)."""
    from prune_fixtures import tmpfs
    now = time.time()
    a = make_image(tart.home, "img", "a", 0, data_bytes=MIB, tags=["a"])
    b = make_image(tart.home, "img", "b", now, tags=["b"])
    vm = make_vm(tart.home, "vm", now)
    leftover = make_vm(tart.home, ".deleting-1234", now)  # a crash in the middle of a delete
    with tmpfs(tart.home / "tmp", 4):
        tart.run("prune", "--older-than", "1")
        assert surviving_digests(tart.home) == {b}
        assert sorted(p.name for p in a.parent.iterdir()) == sorted([b.name, "a", "b"])
        assert tart.run("list", "-q", "--source", "local").stdout == "vm\n"
        tart.run("delete", "vm")
        assert not vm.exists()
        assert sorted(p.name for p in (tart.home / "vms").iterdir()) == [leftover.name]
        tart.run("delete", image_name("img", "b"))
        assert surviving_digests(tart.home) == set()
        assert symlinks(tart.home) == set()


def test_empty_home(tart):
    for args in (["--older-than", "0"], ["--space-budget", "0"], ["--gc"],
                 ["--entries", "vms", "--older-than", "0"]):
        p = tart.run("prune", *args)
        assert p.stdout == "" and p.stderr == ""


def test_gc_repairs_tags_of_a_moved_tart_home(tart, tmp_path):
    """TART_HOME copied or moved elsewhere: the absolute tag targets dangle. Tart's GC would
    delete the tags and then every image they held; ours re-points a tag to the digest
    directory next to it, and only deletes tags whose image is really gone."""
    now = time.time()
    a = make_image(tart.home, "img", "a", now)
    b = make_image(tart.home, "img", "b", now)
    repo = a.parent
    old_repo = tmp_path / "old-home" / "cache" / "OCIs" / "127.0.0.1%3A5000" / "img"
    os.symlink(old_repo / a.name, repo / "latest")
    os.symlink(old_repo / digest_of("gone"), repo / "stale")
    os.symlink(old_repo / "not-a-digest", repo / "odd")
    tart.run("prune", "--gc")
    assert surviving_digests(tart.home) == {a}
    assert symlinks(tart.home) == {repo / "latest"}
    assert os.readlink(repo / "latest") == str(a)
    assert not b.exists()
    assert "127.0.0.1:5000/img:latest" in tart.run("list", "-q").stdout.split()


PULLER = """
import fcntl, os, sys
host_dir, staging, digest_dir, tag = sys.argv[1:5]
fd = os.open(host_dir, os.O_RDONLY | os.O_DIRECTORY)
fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
print('locked', flush=True)
sys.stdin.readline()
os.rename(staging, digest_dir)          # the new image lands, not linked yet...
os.symlink(digest_dir, tag + '.tmp')    # ...then its tag, atomically
os.rename(tag + '.tmp', tag)
"""


def test_gc_waits_for_a_pull_linking_under_the_host_lock(tart):
    """A pull moves a digest directory into place and links its tag under the per-host lock;
    a GC that ran in between would see an unreferenced image and delete it."""
    import subprocess
    import sys
    from prune_fixtures import HOST_DIR, _fill_vm_dir
    host_dir = tart.home / "cache" / "OCIs" / HOST_DIR
    repo = host_dir / "img"
    repo.mkdir(parents=True)
    staging = tart.home / "staging-test"
    _fill_vm_dir(staging)
    digest_dir = repo / digest_of("new")
    puller = subprocess.Popen([sys.executable, "-c", PULLER, str(host_dir), str(staging),
                               str(digest_dir), str(repo / "latest")],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    gc = None
    try:
        assert puller.stdout.readline().strip() == "locked"
        gc = tart.popen("prune", "--gc", stderr=subprocess.PIPE, text=True)
        time.sleep(1)
        assert gc.poll() is None  # waiting for the host lock
        puller.stdin.write("go\n")
        puller.stdin.flush()
        assert puller.wait(timeout=30) == 0
        _, err = gc.communicate(timeout=30)
        assert gc.returncode == 0, err
    finally:
        for p in (puller, gc):
            if p and p.poll() is None:
                p.kill()
                p.wait()
    assert surviving_digests(tart.home) == {digest_dir}
    assert symlinks(tart.home) == {repo / "latest"}


def test_incomplete_digest_dirs_are_not_prune_candidates(tart):
    """A digest directory missing one of its three files (written in place by an older or
    interrupted tool) is not an image: prune leaves it to the GC rules, as Tart lists only
    initialized VM directories."""
    now = time.time()
    full = make_image(tart.home, "img", "full", 0, tags=["t1"])
    partial = make_image(tart.home, "img", "partial", 0, tags=["t2"])
    (partial / "nvram.bin").unlink()
    os.utime(partial, (0, 0))
    tart.run("prune", "--older-than", "0", "--space-budget", "0")
    assert surviving_digests(tart.home) == {partial}
    assert sorted(p.name for p in partial.iterdir()) == ["config.json", "disk.img"]
    assert not full.exists()


def test_delete_of_a_tag_never_deletes_a_namespace_directory(tart):
    """The path of tag "b" in repository "img" is also the namespace directory of every
    "img/b/..." image: `delete host/img:b` must not take that directory for a tag."""
    now = time.time()
    nested = make_image(tart.home, "img/b", "nested", now, tags=["latest"])
    p = tart.run("delete", "127.0.0.1:5000/img:b", check=False)
    assert p.returncode == 2 and "does not exist" in p.stderr
    assert surviving_digests(tart.home) == {nested}
    assert (nested.parent / "latest").is_symlink()
    # A stray regular file is not an image either.
    (nested.parent.parent / "stray").write_text("x")
    p = tart.run("delete", "127.0.0.1:5000/img:stray", check=False)
    assert p.returncode == 2
    assert (nested.parent.parent / "stray").exists()
