#!/usr/bin/python3
# tinykv-fuse used as people use a filesystem: metadata, make, rsync, tar, git, tail -f, two mounts.
#
# Needs root and /dev/fuse (fails, never skips, without them), and the tools
# of DEB_PACKAGES (gcc, make, rsync, tar, git, sqlite3). Starts a scheduler and three
# stores on loopback (the Cluster and Mount helpers of test_fuse.py), mounts
# the cluster twice (the first with -o allow_other), and runs each scenario
# with ordinary programs. Waits are bounded polls; nothing asserts a timing.
#
# Environment: BINDIR (default bin/), FS_TEST_SEED (the random checker's
# seed), FS_SOAK=1 (a longer random checker). Prints PASS/FAIL per scenario
# and "N passed, N failed".

import errno
import hashlib
import json
import os
import random
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_fuse as tf  # noqa: E402
from test_fuse import check, errno_of, read, scenario, sh, wait_for, write  # noqa: E402

ATTR_WAIT_S = 10  # another mount's attribute cache lasts 1 s; this bounds the poll


def as_user(uid, gid, umask, fn):
    """Runs fn() in a child process with the given ids and umask; returns its exit status."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            os.umask(umask)
            code = fn()
        except BaseException:  # noqa: BLE001 - the child reports through its status
            code = 99
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def writers_beside_checker(writer, n, checker):
    """Runs writer(t) for t < n in threads while checker() runs in one more; returns the
    checker's thread (still running) once every writer is done."""
    ch = threading.Thread(target=checker)
    ch.start()
    ws = [threading.Thread(target=writer, args=(t,)) for t in range(n)]
    for w in ws:
        w.start()
    for w in ws:
        w.join()
    return ch


def drop_dentries():
    """Drops the kernel's unused dentries and inodes, so the mounts are asked every name again."""
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("2")


def region_starts(c, lo, hi):
    """The start keys of the regions that begin strictly inside [lo, hi), from the scheduler."""
    url = "http://127.0.0.1:%d/pd/api/v1/regions" % c.http_port
    with urllib.request.urlopen(url, timeout=5) as r:
        regions = json.loads(r.read())["regions"]
    starts = (bytes.fromhex(x.get("start_key", "")) for x in regions)
    return sorted(k for k in starts if lo < k < hi)


def chunk_keys(c):
    """The chunk keys ("\\0c/...") the cluster holds now. Big files split regions by themselves,
    so each region's part of the range is scanned at its leader (a scan stops at its region's
    end); the count is taken again until two agree, in case a split moved a boundary meanwhile."""
    kv = tf.pb["kv"]
    lo, hi = b"\0c/", b"\0c0"

    def once():
        ts = c.tso()
        bounds = [lo] + region_starts(c, lo, hi) + [hi]
        keys = []
        for start, stop in zip(bounds, bounds[1:]):
            while True:
                resp = c.call_leader("KvScan", kv.ScanRequest(start_key=start, end_key=stop, limit=1000,
                                                              version=ts, key_only=True), kv.ScanResponse)
                got = [p.key for p in resp.pairs]
                keys += got
                if len(got) < 1000:
                    break
                start = got[-1] + b"\0"
        return keys

    prev = once()
    for _ in range(10):
        now = once()
        if len(now) == len(prev):
            return now
        prev = now
    return prev


def run_scenarios(c, m1, m2, tmp):
    a, b = m1.path, m2.path
    seed = int(os.environ.get("FS_TEST_SEED", str(random.randrange(1, 1 << 30))))
    print("seed %d (re-run with FS_TEST_SEED=%d)" % (seed, seed), flush=True)
    rnd = random.Random(seed)

    # chmod, chown and utimens are stored: the same mount and the other one see them, ctime moves.
    def chmod_chown_utimens_are_kept():
        write(a + "/meta", b"m")
        before = os.stat(a + "/meta")
        os.chown(a + "/meta", 1234, 5678)  # (before chmod: a chown clears the setuid bit)
        os.chmod(a + "/meta", 0o4751)
        os.utime(a + "/meta", ns=(1000000000123, 1500000000456000789))
        here = os.stat(a + "/meta")

        def there_ok():
            st = os.stat(b + "/meta")
            return (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_mtime_ns, st.st_atime_ns) == \
                (0o4751, 1234, 5678, 1500000000456000789, 1000000000123)

        seen = wait_for(there_ok, ATTR_WAIT_S)
        ok = (stat.S_IMODE(here.st_mode) == 0o4751 and here.st_uid == 1234 and here.st_gid == 5678
              and here.st_mtime_ns == 1500000000456000789 and here.st_ctime_ns >= before.st_ctime_ns
              and here.st_ctime_ns > here.st_mtime_ns and seen)
        check("chmod_chown_utimens_are_kept", ok, repr((oct(here.st_mode), here.st_uid, here.st_gid,
                                                        here.st_mtime_ns, seen)))

    scenario(chmod_chown_utimens_are_kept)

    # Writes and truncates move mtime and ctime forward; a rename moves ctime only.
    def writes_truncates_renames_move_times():
        write(a + "/times", b"one")
        os.utime(a + "/times", ns=(10 ** 18, 10 ** 18))
        write(a + "/times", b"two", "ab")
        st1 = os.stat(a + "/times")
        os.utime(a + "/times", ns=(10 ** 18, 10 ** 18))
        os.truncate(a + "/times", 1)
        st2 = os.stat(a + "/times")
        os.utime(a + "/times", ns=(10 ** 18, 10 ** 18))
        c_before = os.stat(a + "/times").st_ctime_ns
        os.rename(a + "/times", a + "/times2")
        st3 = os.stat(a + "/times2")
        now = time.time_ns()
        ok = (st1.st_mtime_ns != 10 ** 18 and abs(st1.st_mtime_ns - now) < 60 * 10 ** 9
              and st2.st_mtime_ns != 10 ** 18 and st2.st_size == 1
              and st3.st_mtime_ns == 10 ** 18 and st3.st_ctime_ns >= c_before)
        check("writes_truncates_renames_move_times", ok, repr((st1.st_mtime_ns, st2.st_mtime_ns, st3.st_mtime_ns)))

    scenario(writes_truncates_renames_move_times)

    # A directory's st_nlink is 2 plus its subdirectories, through mkdir, rmdir and rename.
    def directory_link_counts():
        os.makedirs(a + "/nl/s1")
        os.mkdir(a + "/nl/s2")
        os.mkdir(a + "/nl/s3")
        write(a + "/nl/file", b"f")
        n1 = os.stat(a + "/nl").st_nlink
        os.rmdir(a + "/nl/s3")
        n2 = os.stat(a + "/nl").st_nlink
        os.mkdir(a + "/nl2")
        os.rename(a + "/nl/s2", a + "/nl2/s2")
        n3, n4 = os.stat(a + "/nl").st_nlink, os.stat(a + "/nl2").st_nlink
        check("directory_link_counts", (n1, n2, n3, n4) == (5, 4, 3, 3), repr((n1, n2, n3, n4)))

    scenario(directory_link_counts)

    # A directory rename moves the records with the keys: modes, owners and times are kept below
    # the new name, a large (chunked) file inside reads back whole, and the old name is gone.
    def directory_rename_keeps_records():
        os.makedirs(a + "/rtree/sub")
        write(a + "/rtree/f", b"f")
        os.chmod(a + "/rtree/f", 0o600)
        os.chown(a + "/rtree/sub", 77, 88)
        os.utime(a + "/rtree/f", ns=(10 ** 17, 10 ** 17))
        big = rnd.randbytes(3 << 20)
        write(a + "/rtree/sub/big", big)
        os.rename(a + "/rtree", a + "/rtree2")

        def moved():
            st, sd = os.stat(b + "/rtree2/f"), os.stat(b + "/rtree2/sub")
            return (stat.S_IMODE(st.st_mode), st.st_mtime_ns, sd.st_uid, sd.st_gid) == (0o600, 10 ** 17, 77, 88)

        ok = wait_for(moved, ATTR_WAIT_S) and read(b + "/rtree2/sub/big") == big and \
            wait_for(lambda: not os.path.exists(b + "/rtree"), ATTR_WAIT_S)
        check("directory_rename_keeps_records", ok)

    scenario(directory_rename_keeps_records)

    # A file made by another user takes its uid, gid and mode under its umask (allow_other lets
    # it in); the kernel enforces the stored modes (default_permissions).
    def new_files_take_caller_ids_and_umask():
        os.mkdir(a + "/shared")
        os.chmod(a + "/shared", 0o777)
        write(a + "/shared/roots", b"root's")
        os.chmod(a + "/shared/roots", 0o644)

        def child():
            with open(a + "/shared/mine", "wb") as f:
                f.write(b"x")
            os.mkdir(a + "/shared/mydir", 0o777)
            denied = errno_of(lambda: write(a + "/shared/roots", b"overwrite"))
            return 0 if denied == errno.EACCES else 3

        rc = as_user(4321, 4322, 0o027, child)
        st = os.stat(a + "/shared/mine")
        sd = os.stat(a + "/shared/mydir")
        ok = (rc == 0 and (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (4321, 4322, 0o640)
              and (sd.st_uid, stat.S_IMODE(sd.st_mode)) == (4321, 0o750) and read(a + "/shared/roots") == b"root's")
        check("new_files_take_caller_ids_and_umask", ok, repr((rc, st.st_uid, st.st_gid, oct(st.st_mode),
                                                               oct(sd.st_mode))))

    scenario(new_files_take_caller_ids_and_umask)

    # Symlinks (symlink, readlink, lstat) and FIFOs, sockets and devices as metadata-only nodes;
    # the other mount sees them.
    def symlinks_and_special_nodes():
        write(a + "/target", b"pointed at")
        os.symlink("target", a + "/sl")
        os.mkfifo(a + "/fifo", 0o600)
        os.mknod(a + "/chr", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
        os.mknod(a + "/sock", 0o600 | stat.S_IFSOCK)
        ok = (os.readlink(b + "/sl") == "target" and read(b + "/sl") == b"pointed at"
              and stat.S_ISLNK(os.lstat(b + "/sl").st_mode) and os.lstat(b + "/sl").st_size == 6
              and stat.S_ISFIFO(os.stat(b + "/fifo").st_mode)
              and stat.S_ISCHR(os.stat(b + "/chr").st_mode) and os.stat(b + "/chr").st_rdev == os.makedev(1, 3)
              and stat.S_ISSOCK(os.stat(b + "/sock").st_mode))
        # (Opening the device needs a mount with -o dev; FUSE mounts are nodev by default.)
        ok = ok and errno_of(lambda: open(a + "/chr", "rb")) == errno.EACCES
        listed = sorted(x for x in os.listdir(b) if x in ("sl", "fifo", "chr", "sock"))
        check("symlinks_and_special_nodes", ok and listed == ["chr", "fifo", "sl", "sock"], repr(listed))

    scenario(symlinks_and_special_nodes)

    # stat/fstat agree with what the caller wrote: unflushed writes count, an unlinked open file
    # still answers fstat with st_nlink 0 and leaves nothing behind.
    def stat_agrees_with_open_file():
        fd = os.open(a + "/open-size", os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
        os.write(fd, b"hello")
        s1, s2 = os.fstat(fd).st_size, os.stat(a + "/open-size").st_size
        os.unlink(a + "/open-size")
        os.write(fd, b" world")
        st = os.fstat(fd)
        names = os.listdir(a)
        os.close(fd)
        gone = not os.path.exists(a + "/open-size") and not [n for n in os.listdir(a) if n.startswith(".fuse")]
        ok = (s1, s2, st.st_size, st.st_nlink) == (5, 5, 11, 0) and gone and \
            not [n for n in names if n.startswith(".fuse") or n == "open-size"]
        check("stat_agrees_with_open_file", ok, repr((s1, s2, st.st_size, st.st_nlink, gone)))

    scenario(stat_agrees_with_open_file)

    # O_EXCL: an existing name is EEXIST at open; two mounts racing for a new name both open
    # (nothing is committed before the close) and the second close fails with EEXIST, the first
    # one's content staying whole.
    def exclusive_create_race():
        write(a + "/excl-old", b"here")
        e_open = errno_of(lambda: os.open(b + "/excl-old", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        fa = os.open(a + "/excl", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        fb = os.open(b + "/excl", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        os.write(fa, b"from a")
        os.write(fb, b"from b")
        os.close(fa)
        e_close = errno_of(lambda: os.close(fb))
        ok = e_open == errno.EEXIST and e_close == errno.EEXIST and read(b + "/excl") == b"from a"
        check("exclusive_create_race", ok, repr((e_open, e_close, read(b + "/excl"))))

    scenario(exclusive_create_race)

    # A look-up of a missing name is answered from this mount's listing of its directory (no
    # cluster round trip), so what matters is that the listing never hides what this mount made:
    # with the kernel's dentries dropped (every name looked up again) a file, a symlink, a
    # directory, a renamed file and a file in a renamed directory are all there, and the old
    # names are not. Another mount's new name shows once the listing's second has passed.
    def negative_lookups_never_hide_own_names():
        d = a + "/neg"
        os.mkdir(d)
        e_first = errno_of(lambda: os.stat(d + "/x"))  # from the empty listing the mkdir began
        write(d + "/x", b"one")
        os.symlink("x", d + "/s")
        os.mkdir(d + "/sub")
        os.mkdir(d + "/r1")
        write(d + "/r1/f", b"in r1")
        os.rename(d + "/r1", d + "/r2")
        os.rename(d + "/x", d + "/x2")
        drop_dentries()
        made = (read(d + "/x2") == b"one" and os.readlink(d + "/s") == "x" and os.path.isdir(d + "/sub")
                and read(d + "/r2/f") == b"in r1" and not os.path.exists(d + "/x")
                and not os.path.exists(d + "/r1"))
        e_other = errno_of(lambda: os.stat(d + "/y"))
        write(b + "/neg/y", b"two")
        seen = wait_for(lambda: os.path.exists(d + "/y") and read(d + "/y") == b"two", ATTR_WAIT_S)
        check("negative_lookups_never_hide_own_names",
              e_first == errno.ENOENT and made and e_other == errno.ENOENT and seen,
              repr((e_first, made, e_other, seen, sorted(os.listdir(d)))))

    scenario(negative_lookups_never_hide_own_names)

    # Listings taken while this mount creates: 8 writers make files in one directory while a
    # checker drops the kernel's dentries, looks up a missing name (so the listing is taken again
    # as soon as it is 1 s old, while closes commit) and stats every file whose close has
    # returned; none is ever missing.
    def own_names_seen_while_listings_are_taken():
        d = a + "/busy"
        os.mkdir(d)
        closed, missing, errors = [], [], []
        stop = threading.Event()

        def writer(t):
            try:
                for i in range(150):
                    name = "%s/w%d-%d" % (d, t, i)
                    write(name, b"x")
                    closed.append(name)
            except OSError as e:
                errors.append(repr(e))

        def checker():
            while not stop.is_set():
                drop_dentries()
                os.path.exists(d + "/never-made")
                for name in list(closed):
                    if not os.path.exists(name):
                        missing.append(name)
                time.sleep(0.05)

        ch = writers_beside_checker(writer, 8, checker)
        time.sleep(1.2)  # the directory's listing expires and is taken again by the next miss
        stop.set()
        ch.join()
        drop_dentries()
        after = [n for n in closed if not os.path.exists(n)]
        check("own_names_seen_while_listings_are_taken",
              not errors and not missing and not after and len(closed) == 1200
              and len(os.listdir(d)) == 1200, repr((errors[:3], missing[:3], after[:3], len(closed))))

    scenario(own_names_seen_while_listings_are_taken)

    # The kernel creates only after a negative look-up, which may come from a listing up to 1 s
    # old: a create without O_TRUNC of a file another mount made meanwhile opens that file (an
    # append keeps its content) and O_EXCL is EEXIST at open.
    def create_after_stale_listing_opens_file_made_elsewhere():
        d = a + "/late"
        os.mkdir(d)
        e = errno_of(lambda: os.stat(d + "/log"))
        write(b + "/late/log", b"theirs;")
        write(b + "/late/excl", b"x")
        fd = os.open(d + "/log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.write(fd, b"mine")
        os.close(fd)
        ex = errno_of(lambda: os.open(d + "/excl", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        v = read(b + "/late/log")
        check("create_after_stale_listing_opens_file_made_elsewhere",
              e == errno.ENOENT and v == b"theirs;mine" and ex == errno.EEXIST, repr((e, v, ex)))

    scenario(create_after_stale_listing_opens_file_made_elsewhere)

    # Many names of one directory looked up in a row are answered from one read of all its
    # children's records (kept 0.2 s): with every dentry dropped and the directory stat'ed
    # through (so the listing is fresh), this mount's own write, chmod, truncate, unlink and
    # rename show at the next stat; and another mount's write, chmod and unlink of those names
    # show here within the attribute bound.
    def children_listing_shows_changes():
        d, dd = a + "/kids", b + "/kids"
        os.mkdir(d)
        for i in range(20):
            write("%s/f%d" % (d, i), b"x" * i)
        own = []

        def walk():
            """Sizes by index of the files there, each looked up again."""
            drop_dentries()
            return {i: os.stat("%s/f%d" % (d, i)).st_size for i in range(20)
                    if os.path.exists("%s/f%d" % (d, i))}

        walk()
        write(d + "/f1", b"y" * 100)
        own.append(walk().get(1) == 100)
        os.chmod(d + "/f2", 0o600)
        walk()
        own.append(stat.S_IMODE(os.stat(d + "/f2").st_mode) == 0o600)
        os.truncate(d + "/f3", 1)
        own.append(walk().get(3) == 1)
        os.unlink(d + "/f5")
        walk()
        own.append(5 not in walk())
        os.rename(d + "/f7", d + "/f7b")
        walk()
        own.append(not os.path.exists(d + "/f7") and os.stat(d + "/f7b").st_size == 7)
        walk()
        write(dd + "/f8", b"z" * 80)
        os.chmod(dd + "/f9", 0o640)
        os.unlink(dd + "/f10")
        theirs = wait_for(lambda: walk().get(8) == 80 and stat.S_IMODE(os.stat(d + "/f9").st_mode) == 0o640
                          and 10 not in walk(), ATTR_WAIT_S)
        check("children_listing_shows_changes", all(own) and theirs, repr((own, theirs)))

    scenario(children_listing_shows_changes)

    # Listings of children's records taken while this mount changes those children: 4 writers
    # append one byte at a time to their files (no truncation, so sizes only grow) while a
    # checker drops the dentries and stats every file; a stat never shows less than the size
    # whose close returned before it.
    def own_writes_seen_while_children_listings_are_taken():
        d = a + "/grow"
        os.mkdir(d)
        names = ["%s/g%d" % (d, t) for t in range(4)]
        closed = [0] * 4
        for n in names:
            write(n, b"")
        short, errors = [], []
        stop = threading.Event()

        def writer(t):
            try:
                for i in range(1, 151):
                    write(names[t], b"g", "ab")
                    closed[t] = i
            except OSError as e:
                errors.append(repr(e))

        def checker():
            while not stop.is_set():
                drop_dentries()
                for t, n in enumerate(names):
                    floor = closed[t]
                    size = os.stat(n).st_size
                    if size < floor:
                        short.append((n, size, floor))

        ch = writers_beside_checker(writer, 4, checker)
        stop.set()
        ch.join()
        final = [os.stat(n).st_size for n in names]
        check("own_writes_seen_while_children_listings_are_taken",
              not errors and not short and final == [150] * 4, repr((errors[:3], short[:3], final)))

    scenario(own_writes_seen_while_children_listings_are_taken)

    # Closes of new files arriving together commit in one transaction: 16 writers create files
    # in one directory of the first mount while 4 writers on the second mount write a quarter
    # of the same names (so some batches meet write conflicts and their closes commit alone).
    # Every close succeeds; the other mount reads each uncontested file exactly as written, each
    # contested one whole from one of its two writers, and stat agrees with the content.
    def concurrent_creates_commit_together():
        d, dd = a + "/group", b + "/group"
        os.mkdir(d)
        errors = []

        def body(side, t, i):
            return (b"%s%d-%d;" % (side, t, i)) * (20 + i)

        def writer(root, side, t, count):
            try:
                for i in range(count):
                    write("%s/g%d-%d" % (root, t, i), body(side, t, i))
            except OSError as e:
                errors.append(repr(e))

        ws = [threading.Thread(target=writer, args=(d, b"a", t, 40)) for t in range(16)]
        ws += [threading.Thread(target=writer, args=(dd, b"b", t, 40)) for t in range(4)]
        for w in ws:
            w.start()
        for w in ws:
            w.join()
        bad = []
        for t in range(16):
            for i in range(40):
                name = "%s/g%d-%d" % (dd, t, i)
                v = read(name)
                ok = v in ((body(b"a", t, i), body(b"b", t, i)) if t < 4 else (body(b"a", t, i),))
                if not ok or os.stat(name).st_size != len(v):
                    bad.append((name, v[:20], os.stat(name).st_size))
        check("concurrent_creates_commit_together", not errors and not bad
              and len(os.listdir(d)) == 640, repr((errors[:3], bad[:3], len(os.listdir(d)))))

    scenario(concurrent_creates_commit_together)

    # A lookupcache other than all or positive is refused at mount time with a message.
    def bad_lookupcache_is_refused():
        mnt = os.path.join(tmp, "mnt-bad")
        os.makedirs(mnt, exist_ok=True)
        r = subprocess.run([os.path.join(tf.BINDIR, "tinykv-fuse"), "-f", "-o",
                            "scheduler=%s,lookupcache=sometimes" % c.pd_addr, mnt],
                           capture_output=True, timeout=30)
        check("bad_lookupcache_is_refused", r.returncode != 0 and b"lookupcache" in r.stderr
              and not tf.in_mount_table(mnt), repr((r.returncode, r.stderr[-200:])))

    scenario(bad_lookupcache_is_refused)

    # statfs reports the stores' capacity and free space (as the scheduler has them) per replica.
    def statfs_from_store_figures():
        url = "http://127.0.0.1:%d/pd/api/v1/stores" % c.http_port

        def figures():
            with urllib.request.urlopen(url, timeout=3) as r:
                stores = json.loads(r.read())["stores"]
            return [s.get("status", s).get("capacity", 0) for s in stores]

        reported = wait_for(lambda: all(figures()) and len(figures()) == 3, 30, 0.5)
        caps = figures()
        sv = os.statvfs(a)
        total = sv.f_blocks * sv.f_frsize
        want = sum(caps) // 3
        ok = reported and want > 0 and abs(total - want) <= want // 100 + 8192 and sv.f_bavail <= sv.f_blocks
        check("statfs_from_store_figures", ok, repr((caps, total, sv.f_bavail)))

    scenario(statfs_from_store_figures)

    # make builds, the binary built on the mount runs, a second make does nothing, and an edit
    # makes it rebuild.
    def make_rebuilds_after_edit():
        d = a + "/proj"
        os.mkdir(d)
        write(d + "/main.c", b"int main(void){return 42;}\n")
        write(d + "/Makefile", b"prog: main.c\n\tgcc -o prog main.c\n")
        r1 = sh("make", cwd=d)
        run = subprocess.run([d + "/prog"], timeout=30).returncode
        r2 = sh("make", cwd=d)
        time.sleep(0.01)  # the edit must get a later mtime than the build (nanosecond clock)
        write(d + "/main.c", b"int main(void){return 7;}\n")
        r3 = sh("make", cwd=d)
        run2 = subprocess.run([d + "/prog"], timeout=30).returncode
        ok = (r1.returncode == 0 and run == 42 and b"up to date" in r2.stdout and b"gcc" in r3.stdout
              and run2 == 7 and os.stat(d + "/prog").st_mode & 0o111)
        check("make_rebuilds_after_edit", ok, repr((r1.stdout + r1.stderr, run, r2.stdout, r3.stdout, run2)))

    scenario(make_rebuilds_after_edit)

    # A source tree with modes, times, symlinks and an executable, built locally for the tools below.
    src = os.path.join(tmp, "tree")
    os.makedirs(src + "/a/b/c")
    write(src + "/a/one", b"one\n")
    write(src + "/a/b/run.sh", b"#!/bin/sh\necho ran\n")
    os.chmod(src + "/a/b/run.sh", 0o755)
    os.chmod(src + "/a/one", 0o640)
    write(src + "/a/b/c/blob", bytes(rnd.getrandbits(8) for _ in range(200000)))
    os.symlink("../one", src + "/a/b/link")
    os.utime(src + "/a/one", (1577934245, 1577934245))

    # rsync -a in, again (nothing transferred), and out again: the trees are identical.
    def rsync_in_again_and_out():
        r1 = sh("rsync -a %s/ %s/rs/" % (src, a))
        r2 = sh("rsync -ai %s/ %s/rs/" % (src, a))
        r3 = sh("rsync -a %s/rs/ %s/rs-out/" % (b, tmp))
        d = sh("diff -r %s %s/rs-out" % (src, tmp))
        modes = [stat.S_IMODE(os.lstat(p).st_mode) == stat.S_IMODE(os.lstat(q).st_mode)
                 and int(os.lstat(p).st_mtime) == int(os.lstat(q).st_mtime)
                 for p, q in ((src + "/a/one", tmp + "/rs-out/a/one"), (src + "/a/b/run.sh", tmp + "/rs-out/a/b/run.sh"))]
        ok = r1.returncode == 0 and r2.returncode == 0 and r2.stdout.strip() == b"" and r3.returncode == 0 \
            and d.returncode == 0 and all(modes)
        check("rsync_in_again_and_out", ok, repr((r1.stderr, r2.stdout[:300], r3.stderr, d.stdout[:300], modes)))

    scenario(rsync_in_again_and_out)

    # tar x with modes and times onto the mount, tar c back out: diff -r finds nothing, and the
    # modes, types and mtimes on the mount are those of the same archive extracted locally.
    def tar_keeps_modes_and_times():
        r1 = sh("tar -C %s -cf %s/t.tar . && mkdir %s/tarin && tar -C %s/tarin -xpf %s/t.tar && "
                "mkdir %s/tarlocal && tar -C %s/tarlocal -xpf %s/t.tar" % (src, tmp, a, a, tmp, tmp, tmp, tmp))
        os.mkdir(tmp + "/tarout")
        r2 = sh("tar -C %s/tarin -cf - . | tar -C %s/tarout -xpf -" % (b, tmp))
        d = sh("diff -r %s %s/tarout" % (src, tmp))
        ls_src = sh("cd %s/tarlocal && find . -printf '%%p %%m %%T@ %%y\\n' | sort" % tmp).stdout
        ls_mnt = sh("cd %s/tarin && find . -printf '%%p %%m %%T@ %%y\\n' | sort" % b).stdout
        strip = lambda s: b"\n".join(ln for ln in s.split(b"\n") if not ln.startswith(b". "))  # noqa: E731
        ok = r1.returncode == 0 and r2.returncode == 0 and d.returncode == 0 and strip(ls_src) == strip(ls_mnt)
        check("tar_keeps_modes_and_times", ok, repr((r1.stderr, r2.stderr, d.stdout[:300], ls_src[:300], ls_mnt[:300])))

    scenario(tar_keeps_modes_and_times)

    # git clone onto the mount, status is clean, checkout of another branch and back works.
    # (The repository holds a 17 MiB incompressible file: its pack is past the 8 MiB value limit;
    # --no-local makes git send a pack as it would over a network.)
    def git_clone_status_checkout():
        repo = tmp + "/repo"
        g = "git -c user.email=t@t -c user.name=t "
        os.makedirs(repo)
        write(repo + "/blob.bin", rnd.randbytes(17 << 20))
        r0 = sh("cd %s && git init -q . && cp -a %s/. %s/ && %s add . && %s commit -qm one && "
                "git branch other && echo two >> a/one && %s commit -qam two" % (repo, src, repo, g, g, g))
        r1 = sh("git clone -q --no-local %s %s/clone" % (repo, a), timeout=300)
        packs = [os.path.getsize(os.path.join(a + "/clone/.git/objects/pack", n))
                 for n in os.listdir(a + "/clone/.git/objects/pack") if n.endswith(".pack")] if r1.returncode == 0 else []
        st = sh("git status --porcelain && git fsck --no-progress", cwd=a + "/clone", timeout=300)
        co = sh("git checkout -q other && cat a/one && git checkout -q - && git status --porcelain", cwd=a + "/clone")
        ok = r0.returncode == 0 and r1.returncode == 0 and st.returncode == 0 and st.stdout == b"" \
            and co.returncode == 0 and co.stdout == b"one\n" and packs and max(packs) > 16 << 20 \
            and read(a + "/clone/blob.bin") == read(repo + "/blob.bin")
        check("git_clone_status_checkout", ok, repr((r0.stderr, r1.stderr, packs, st.stdout[:300], st.stderr[:300],
                                                     co.stdout, co.stderr)))

    scenario(git_clone_status_checkout)

    # sqlite3 in its default (rollback journal) and WAL modes: transactions, integrity_check,
    # a checkpoint, and the other mount reading the database afterwards.
    def sqlite_default_and_wal():
        outs = []
        for mode, db in (("delete", a + "/rollback.db"), ("wal", a + "/wal.db")):
            r1 = sh("sqlite3 %s \"pragma journal_mode=%s; create table t(k integer primary key, v text); "
                    "begin; %s commit; pragma integrity_check;\"" %
                    (db, mode, " ".join("insert into t(v) values('row %d');" % i for i in range(200))))
            r2 = sh("sqlite3 %s \"update t set v = v || '!' where k %% 2 = 0; delete from t where k > 150; "
                    "pragma wal_checkpoint; pragma integrity_check; select count(*) from t;\"" % db)
            r3 = sh("sqlite3 %s \"pragma integrity_check; select count(*), sum(v like '%%!') from t;\"" %
                    db.replace(a, b, 1))
            outs.append((mode, r1.returncode, r1.stdout, r2.returncode, r2.stdout.split(b"\n")[-2:],
                         r3.returncode, r3.stdout, r1.stderr + r2.stderr + r3.stderr))
        ok = all(o[1] == 0 and o[2].endswith(b"ok\n") and o[3] == 0 and o[4] == [b"150", b""] and o[5] == 0
                 and o[6] == b"ok\n150|75\n" for o in outs)
        check("sqlite_default_and_wal", ok, repr(outs))

    scenario(sqlite_default_and_wal)

    # tail -f shows lines appended through the other mount and through its own; tail -F also
    # follows the name to a replacement.
    def tail_f_sees_appends():
        write(a + "/tailed", b"first\n")
        out = open(tmp + "/tail.out", "wb")
        p = subprocess.Popen(["tail", "-f", a + "/tailed"], stdout=out, stderr=subprocess.STDOUT)
        try:
            got1 = wait_for(lambda: read(tmp + "/tail.out") == b"first\n", 15)
            write(b + "/tailed", b"second\n", "ab")
            got2 = wait_for(lambda: read(tmp + "/tail.out") == b"first\nsecond\n", 15)
            write(a + "/tailed", b"third\n", "ab")
            got3 = wait_for(lambda: read(tmp + "/tail.out") == b"first\nsecond\nthird\n", 15)
        finally:
            p.kill()
            p.wait()
            out.close()
        # tail -F follows the name to a new file put in place of the old one.
        out = open(tmp + "/tailF.out", "wb")
        p = subprocess.Popen(["tail", "-F", a + "/tailed"], stdout=out, stderr=subprocess.DEVNULL)
        try:
            got4 = wait_for(lambda: read(tmp + "/tailF.out").endswith(b"third\n"), 15)
            os.rename(a + "/tailed", a + "/tailed.old")
            write(a + "/tailed", b"new file\n")
            got5 = wait_for(lambda: read(tmp + "/tailF.out").endswith(b"new file\n"), 15)
            write(b + "/tailed", b"more\n", "ab")
            got6 = wait_for(lambda: read(tmp + "/tailF.out").endswith(b"new file\nmore\n"), 15)
        finally:
            p.kill()
            p.wait()
            out.close()
        check("tail_f_sees_appends", got1 and got2 and got3 and got4 and got5 and got6,
              repr((read(tmp + "/tail.out"), read(tmp + "/tailF.out"))))

    scenario(tail_f_sees_appends)

    # Two mounts see each other's chmod, rename and unlink (after at most their attribute cache).
    def two_mounts_see_chmod_rename_unlink():
        write(a + "/both", b"b")
        os.chmod(b + "/both", 0o600)
        seen_chmod = wait_for(lambda: stat.S_IMODE(os.stat(a + "/both").st_mode) == 0o600, ATTR_WAIT_S)
        os.rename(a + "/both", a + "/both2")
        seen_rename = wait_for(lambda: not os.path.exists(b + "/both") and os.path.exists(b + "/both2")
                               and stat.S_IMODE(os.stat(b + "/both2").st_mode) == 0o600, ATTR_WAIT_S)
        os.unlink(b + "/both2")
        seen_unlink = wait_for(lambda: not os.path.exists(a + "/both2"), ATTR_WAIT_S)
        check("two_mounts_see_chmod_rename_unlink", seen_chmod and seen_rename and seen_unlink,
              repr((seen_chmod, seen_rename, seen_unlink)))

    scenario(two_mounts_see_chmod_rename_unlink)

    # One commit per close: a file made by create is this mount's at once (stat, a listing with
    # its attributes) while the store has nothing of it, so the other mount finds no such name;
    # after the close the other mount reads exactly what was written, with the create's mode.
    def created_file_is_local_until_close():
        os.makedirs(a + "/fresh", exist_ok=True)
        fd = os.open(a + "/fresh/new", os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o640)
        try:
            os.write(fd, b"12345")
            st = os.stat(a + "/fresh/new")
            here = stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o640 and st.st_size == 5
            listed = {e.name: e.stat().st_size for e in os.scandir(a + "/fresh")}
            other = errno_of(lambda: os.stat(b + "/fresh/new"))
            other_listed = "new" in os.listdir(b + "/fresh")
        finally:
            os.close(fd)
        after = wait_for(lambda: os.path.exists(b + "/fresh/new") and read(b + "/fresh/new") == b"12345",
                         ATTR_WAIT_S)
        st2 = os.stat(b + "/fresh/new") if after else None
        ok = here and listed.get("new") == 5 and other == errno.ENOENT and not other_listed and after \
            and stat.S_IMODE(st2.st_mode) == 0o640 and st2.st_size == 5
        check("created_file_is_local_until_close", ok, repr((here, listed, other, other_listed, after)))

    scenario(created_file_is_local_until_close)

    # A tinykv-fuse killed (SIGKILL) between a create (with a write) and its close leaves nothing:
    # no name on the other mounts and neither the content key nor its record in the store.
    def crash_between_create_and_close_leaves_nothing():
        os.makedirs(a + "/fresh", exist_ok=True)
        m3 = tf.Mount(c, os.path.join(tmp, "mnt3"), os.path.join(tmp, "fuse3.log"))
        if not m3.start():
            check("crash_between_create_and_close_leaves_nothing", False, "third mount did not start")
            return
        try:
            fd = os.open(m3.path + "/fresh/crashed", os.O_CREAT | os.O_WRONLY, 0o644)
            os.write(fd, b"half a file")
            m3.proc.kill()
            try:
                os.close(fd)  # ENOTCONN: its server is gone
            except OSError:
                pass
        finally:
            m3.unmount()
        kv = tf.pb["kv"]
        ts = c.tso()
        keys = [b"fresh/crashed", b"\0m/fresh/crashed"]
        found = [not c.call_leader("KvGet", kv.GetRequest(key=k, version=ts), kv.GetResponse).not_found
                 for k in keys]
        gone = errno_of(lambda: os.stat(a + "/fresh/crashed")) == errno.ENOENT and \
            "crashed" not in os.listdir(a + "/fresh")
        check("crash_between_create_and_close_leaves_nothing", gone and not any(found), repr((gone, found)))

    scenario(crash_between_create_and_close_leaves_nothing)

    # A read-only open reads the content only and the record when asked: fstat of it once the
    # kernel's attributes are gone (after an unlink here) shows the stored mode and mtime, the
    # size it reads, and st_nlink 0; the reads still give the content.
    def read_only_open_fstat_has_the_record():
        write(a + "/ro-rec", b"recorded")
        os.chmod(a + "/ro-rec", 0o604)
        os.utime(a + "/ro-rec", (1000000000, 1234567890))
        fd = os.open(a + "/ro-rec", os.O_RDONLY)
        try:
            os.unlink(a + "/ro-rec")
            st = os.fstat(fd)
            data = os.pread(fd, 100, 0)
        finally:
            os.close(fd)
        ok = stat.S_IMODE(st.st_mode) == 0o604 and int(st.st_mtime) == 1234567890 and \
            st.st_size == 8 and st.st_nlink == 0 and data == b"recorded"
        check("read_only_open_fstat_has_the_record", ok,
              repr((oct(st.st_mode), st.st_mtime, st.st_size, st.st_nlink, data)))

    scenario(read_only_open_fstat_has_the_record)

    # Random pwrite/pread/ftruncate on one open file, mirrored in memory: every read and every
    # fstat and stat size agree with the model, and the other mount reads the same after close.
    # The second run moves around the inline limit (1 MiB) so the file goes to chunks.
    def checker(name, path, rounds, spread, max_write):
        model = bytearray()
        fd = os.open(path, os.O_CREAT | os.O_RDWR | os.O_TRUNC, 0o644)
        bad = []
        try:
            for i in range(rounds):
                op = rnd.randrange(10)
                if op < 5:
                    off = rnd.randrange(0, len(model) + spread)
                    data = rnd.randbytes(rnd.randrange(1, max_write))
                    os.pwrite(fd, data, off)
                    if off > len(model):
                        model.extend(b"\0" * (off - len(model)))
                    model[off:off + len(data)] = data
                elif op < 8:
                    off = rnd.randrange(0, len(model) + 100)
                    n = rnd.randrange(1, max_write + 2000)
                    got = os.pread(fd, n, off)
                    if got != bytes(model[off:off + n]):
                        bad.append(("read", i, off, n))
                elif op < 9:
                    size = rnd.randrange(0, len(model) + spread)
                    os.ftruncate(fd, size)
                    model = model[:size] + bytearray(b"\0" * max(0, size - len(model)))
                else:
                    os.fsync(fd)
                if os.fstat(fd).st_size != len(model) or os.stat(path).st_size != len(model):
                    bad.append(("size", i, os.fstat(fd).st_size, len(model)))
                if len(bad) > 3:
                    break
        finally:
            os.close(fd)
        other = path.replace(a, b, 1)
        same = wait_for(lambda: read(other) == bytes(model) and os.stat(other).st_size == len(model),
                        ATTR_WAIT_S)
        check(name, not bad and same, repr((bad[:4], same, len(model))))

    soak = os.environ.get("FS_SOAK") == "1"
    scenario(lambda: checker("random_read_write_truncate_checker", a + "/checker", 3000 if soak else 300,
                             4096, 3000))
    scenario(lambda: checker("random_checker_across_chunks", a + "/checker-big", 600 if soak else 80,
                             3 << 20, 300000))

    # A value past 1 MiB written through the KV API (one key, up to 8 MiB) reads as it is, and a
    # write through the mount moves it to chunks without losing a byte.
    def kv_api_value_past_inline_limit():
        value = rnd.randbytes(6 << 20)
        c.txn_put({b"kv-big": value})
        same = read(b + "/kv-big") == value
        write(a + "/kv-big", b"tail", "ab")
        grown = wait_for(lambda: read(b + "/kv-big") == value + b"tail", ATTR_WAIT_S)
        check("kv_api_value_past_inline_limit", same and grown, repr((same, grown)))

    scenario(kv_api_value_past_inline_limit)

    # Files far beyond the 8 MiB value limit: written, read back by range and whole from the
    # other mount; a reader that opened before a rewrite reads the old file whole; in-place
    # writes, appends and truncates; replaced and unlinked chunks are collected.
    def large_files():
        size = int(os.environ.get("FS_LARGE_MB", "48")) << 20
        old_src, new_src = tmp + "/large-old", tmp + "/large-new"
        for path in (old_src, new_src):
            with open(path, "wb") as f:
                for _ in range(size >> 20):
                    f.write(rnd.randbytes(1 << 20))
        chunk_keys_before = len(chunk_keys(c))
        t0 = time.time()
        r1 = sh("cp %s %s/large" % (old_src, a), timeout=1800)
        t_write = time.time() - t0
        t0 = time.time()
        r2 = sh("cmp %s %s/large" % (old_src, b), timeout=1800)
        t_read = time.time() - t0
        print("  %d MiB: cp in %.1f s, cmp from the other mount %.1f s" % (size >> 20, t_write, t_read), flush=True)
        ok_ranges = True
        with open(b + "/large", "rb") as f, open(old_src, "rb") as g:
            for _ in range(20):
                off = rnd.randrange(0, size)
                f.seek(off)
                g.seek(off)
                ok_ranges = ok_ranges and f.read(70000) == g.read(70000)
        n_chunks = (size + (1 << 20) - 1) >> 20
        keys_one = len(chunk_keys(c)) - chunk_keys_before
        # A reader opened before a rewrite keeps reading the old file whole.
        old_reader = open(b + "/large", "rb")
        old_reader.read(1000)
        r3 = sh("cp %s %s/large" % (new_src, a), timeout=1800)
        old_reader.seek(0)
        ok_old = hashlib.sha256(old_reader.read()).digest() == hashlib.sha256(read(old_src)).digest()
        old_reader.close()
        r4 = sh("cmp %s %s/large" % (new_src, b), timeout=1800)
        keys_after_rewrite = len(chunk_keys(c)) - chunk_keys_before
        # In place in the middle, an append, a truncate and a growth (zeros).
        model = bytearray(read(new_src))
        with open(a + "/large", "r+b") as f:
            f.seek(size // 2 + 12345)
            f.write(b"X" * 3000000)
        model[size // 2 + 12345:size // 2 + 12345 + 3000000] = b"X" * 3000000
        write(a + "/large", b"appended", "ab")
        model += b"appended"
        ok_inplace = wait_for(lambda: read(b + "/large") == bytes(model), ATTR_WAIT_S)
        keys_after_inplace = len(chunk_keys(c)) - chunk_keys_before
        os.truncate(a + "/large", 5000000)
        os.truncate(a + "/large", 7000000)
        want = bytes(model[:5000000]) + b"\0" * 2000000
        ok_trunc = wait_for(lambda: read(b + "/large") == want and os.stat(b + "/large").st_size == 7000000,
                            ATTR_WAIT_S)
        e_big = errno_of(lambda: os.truncate(a + "/large", 17 << 40))
        os.unlink(a + "/large")
        keys_after_unlink = len(chunk_keys(c)) - chunk_keys_before
        got = (r1.returncode, r2.returncode, ok_ranges, keys_one, r3.returncode, ok_old, r4.returncode,
               keys_after_rewrite, ok_inplace, keys_after_inplace, ok_trunc, e_big, keys_after_unlink)
        want_got = (0, 0, True, 2 * n_chunks, 0, True, 0, 2 * n_chunks, True, 2 * (n_chunks + 1), True,
                    errno.EFBIG, 0)
        check("large_files", got == want_got, repr((got, want_got, r1.stderr, r2.stdout)))

    scenario(large_files)

    # A store short of disk space refuses what adds data: the stores restart with a reserve
    # (--reserve-space) above what the disk has free. A create, an append and a file written
    # into chunks fail with ENOSPC and leave the files as they were (no chunk behind); RawPut is answered DiskFull by the leader; cat, rm and
    # RawDelete still work. Restarted with the default reserve, writes go through again. Last:
    # it restarts the stores.
    def restart_stores(extra):
        for st in c.stores:
            st.kill(signal.SIGTERM)
            if "--reserve-space" in st.args:
                i = st.args.index("--reserve-space")
                del st.args[i:i + 2]
            st.args += extra
            st.start()
        kv = tf.pb["kv"]

        def serving():
            """Some store serves a raw read of the region: it has a leader."""
            try:
                return c.call_leader("RawGet", kv.RawGetRequest(key=b"probe"), kv.RawGetResponse,
                                     timeout_s=5) is not None
            except RuntimeError:
                return False
        return wait_for(serving, 60)

    def settled_errno(fn):
        """fn's errno, once the mount is past the stores' restart (EIO while they elect)."""
        got = [errno.EIO]

        def done():
            got[0] = errno_of(fn)
            return got[0] != errno.EIO
        wait_for(done, 60, 0.5)
        return got[0]

    def raw_put_answer(key):
        """The first answer to a RawPut that is not NotLeader (the leader's), or None."""
        kv = tf.pb["kv"]
        deadline = time.time() + 20
        while time.time() < deadline:
            for port in c.ports:
                stub = c.channel("127.0.0.1:%d" % port).unary_unary(
                    "/tinykvpb.TinyKv/RawPut", request_serializer=kv.RawPutRequest.SerializeToString,
                    response_deserializer=kv.RawPutResponse.FromString)
                try:
                    resp = stub(kv.RawPutRequest(key=key, value=b"v"), timeout=3)
                except Exception:
                    continue
                if not resp.region_error.HasField("not_leader"):
                    return resp
            time.sleep(0.1)
        return None

    def disk_low_refuses_writes_with_enospc():
        write(a + "/full-kept", b"kept")
        write(a + "/full-removed", b"x" * 100)
        kv = tf.pb["kv"]
        c.call_leader("RawPut", kv.RawPutRequest(key=b"raw-full", value=b"v"), kv.RawPutResponse)
        free_mib = shutil.disk_usage(tmp).free >> 20
        up = restart_stores(["--reserve-space", "%dMiB" % (free_mib + 1024)])
        e_create = settled_errno(lambda: write(a + "/full-new", b"new"))
        e_append = settled_errno(lambda: write(a + "/full-kept", b"more", "ab"))
        chunks_before = len(chunk_keys(c))
        # A file past 1 MiB goes to chunks as it is written: those writes are refused too, and
        # nothing of them stays behind.
        e_big = settled_errno(lambda: write(a + "/full-big", os.urandom(3 << 20)))
        chunks_after = len(chunk_keys(c))
        kept = (read(b + "/full-kept") == b"kept" and not os.path.exists(b + "/full-new") and
                not os.path.exists(b + "/full-big") and chunks_after == chunks_before)
        e_rm = settled_errno(lambda: os.unlink(a + "/full-removed"))
        removed = wait_for(lambda: not os.path.exists(b + "/full-removed"), ATTR_WAIT_S)
        refused = raw_put_answer(b"raw-full-new")
        disk_full = refused is not None and refused.region_error.HasField("disk_full")
        deleted = c.call_leader("RawDelete", kv.RawDeleteRequest(key=b"raw-full"), kv.RawDeleteResponse)
        up_again = restart_stores([])
        e_after = settled_errno(lambda: write(a + "/full-new", b"new"))
        after = e_after == 0 and wait_for(lambda: os.path.exists(b + "/full-new") and
                                          read(b + "/full-new") == b"new", ATTR_WAIT_S)
        check("disk_low_refuses_writes_with_enospc",
              up and e_create == errno.ENOSPC and e_append == errno.ENOSPC and e_big == errno.ENOSPC and
              kept and e_rm == 0 and
              removed and disk_full and not deleted.error and up_again and after,
              repr((up, e_create, e_append, e_big, chunks_before, chunks_after, kept, e_rm, removed,
                    refused.region_error.message if refused else None, deleted.error, up_again,
                    e_after, after)))

    scenario(disk_low_refuses_writes_with_enospc)


def main():
    if os.geteuid() != 0 or not os.path.exists("/dev/fuse"):
        check("fuse_available", False, "needs root and /dev/fuse")
        print("%d passed, %d failed" % (tf.results.count(True), tf.results.count(False)))
        return 1
    tmp = tempfile.mkdtemp(prefix="tinykv-fstools-")
    os.chmod(tmp, 0o755)  # the other user of new_files_take_caller_ids_and_umask walks through it
    gen = os.path.join(tmp, "gen")
    os.mkdir(gen)
    tf.generate_protos(gen)
    c = tf.Cluster(tmp)
    m1 = tf.Mount(c, os.path.join(tmp, "mnt1"), os.path.join(tmp, "fuse1.log"), ",allow_other")
    # mnt2 checks what mnt1 made at once: it looks every missing name up (test_fuse.py says why).
    m2 = tf.Mount(c, os.path.join(tmp, "mnt2"), os.path.join(tmp, "fuse2.log"), ",lookupcache=positive")
    t0 = time.time()
    try:
        c.start()
        up = c.wait_replicated(30)
        check("cluster_replicated_with_a_leader", up)
        if up:
            check("two_mounts", m1.start() and m2.start())
            run_scenarios(c, m1, m2, tmp)
            check("unmount", m1.unmount() == 0 and m2.unmount() == 0)
    finally:
        for m in (m1, m2):
            try:
                m.unmount()
            except Exception:
                pass
        c.kill_all()
        for ch in c.channels.values():
            ch.close()
        if tf.results.count(False):
            for name in ("fuse1.log", "fuse2.log"):
                path = os.path.join(tmp, name)
                if os.path.exists(path):
                    print("---- %s (tail)" % name)
                    with open(path, errors="replace") as f:
                        print("".join(f.readlines()[-15:]))
        for m in ("mnt1", "mnt2", "mnt3"):
            if tf.in_mount_table(os.path.join(tmp, m)):
                subprocess.run(["fusermount3", "-uz", os.path.join(tmp, m)], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
    print("fs tool tests took %.1f s" % (time.time() - t0))
    print("%d passed, %d failed" % (tf.results.count(True), tf.results.count(False)))
    return 1 if tf.results.count(False) else 0


if __name__ == "__main__":
    sys.exit(main())
