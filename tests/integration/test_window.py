# SPDX-License-Identifier: Apache-2.0
"""The VM window of `tart run` (QEMU's GTK display) on a virtual X server (Xvfb), and the VNC
server beside it, checked with real clients: an Xlib client finds the window by its title and
closes it as a window manager would (WM_DELETE_WINDOW), ImageMagick's `import` takes the
window's screenshot, tesseract reads the guest's console text in it, and gvnccapture (gtk-vnc)
logs into the VNC server with the printed password. The debian guest boots once (20-80 s under
TCG); the tiny guest covers the flag combinations in a few seconds each."""
import os
import pty
import re
import select
import shutil
import socket
import struct
import subprocess
import termios
import time

import pytest

from run_fixtures import finish, make_tiny_vm, start_run, wait_serial
from run_fixtures import debian_guest, kill_leftover_runs, tiny_guest  # noqa: F401 (fixtures)

NEEDS = "scripts/install-deps.sh --tests installs it (make test and CI do)"
VNC_URL = re.compile(r"VNC server is running at vnc://:([^@]+)@127\.0\.0\.1:(\d+)")


def _need_tools():
    for tool in ("Xvfb", "import", "convert", "tesseract", "gvnccapture"):
        if not shutil.which(tool):
            pytest.skip(f"'{tool}' is not installed: the window test cannot run ({NEEDS})")
    try:
        import Xlib.display  # noqa: F401
    except ImportError:
        pytest.skip(f"python3-xlib is not installed: the window test cannot run ({NEEDS})")
    qemu = shutil.which("qemu-system-x86_64")
    if not qemu:
        pytest.skip("qemu-system-x86_64 is not installed")
    out = subprocess.run([qemu, "-display", "help"], capture_output=True, text=True).stdout
    if "\ngtk\n" not in out:
        pytest.skip(f"QEMU's GTK display (qemu-system-gui) is not installed ({NEEDS})")


class XServer:
    def __init__(self, proc, display):
        self.proc = proc
        self.display = display
        self.env = {"DISPLAY": display}

    def windows(self):
        """{title: id} of the top-level windows."""
        from Xlib import display as xdisplay
        d = xdisplay.Display(self.display)
        try:
            net_wm_name = d.intern_atom("_NET_WM_NAME")
            out = {}
            for w in d.screen().root.query_tree().children:
                name = w.get_full_text_property(net_wm_name) or w.get_wm_name()
                if name:
                    out[name] = w.id
            return out
        finally:
            d.close()

    def wait_window(self, title, proc, timeout=120):
        deadline = time.time() + timeout
        while time.time() < deadline:
            wid = self.windows().get(title)
            if wid:
                return wid
            if proc.poll() is not None:
                raise AssertionError(f"tart run exited {proc.returncode}: {proc.stderr.read()}")
            time.sleep(0.2)
        raise AssertionError(f"no window titled {title!r} within {timeout} s: {self.windows()}")

    def close(self, wid):
        """What a window manager does when the user clicks the close button."""
        from Xlib import X, display as xdisplay
        from Xlib.protocol import event
        d = xdisplay.Display(self.display)
        try:
            w = d.create_resource_object("window", wid)
            delete = d.intern_atom("WM_DELETE_WINDOW")
            assert delete in (w.get_wm_protocols() or []), "the window does not accept closing"
            w.send_event(event.ClientMessage(window=w, client_type=d.intern_atom("WM_PROTOCOLS"),
                                             data=(32, [delete, X.CurrentTime, 0, 0, 0])),
                         event_mask=X.NoEventMask)
            d.flush()
        finally:
            d.close()

    def type(self, wid, text):
        """Keys typed on the host's keyboard (XTEST) while the window has the focus."""
        from Xlib import X, XK, display as xdisplay
        from Xlib.ext import xtest
        d = xdisplay.Display(self.display)
        try:
            d.create_resource_object("window", wid).set_input_focus(X.RevertToParent,
                                                                     X.CurrentTime)
            d.sync()
            assert d.get_input_focus().focus.id == wid
            time.sleep(0.5)  # GTK handles the FocusIn before it takes keys
            for ch in text:
                code = d.keysym_to_keycode(XK.XK_Return if ch == "\n" else
                                           XK.string_to_keysym(ch))
                for kind in (X.KeyPress, X.KeyRelease):
                    xtest.fake_input(d, kind, code)
                    d.sync()
                    time.sleep(0.03)
        finally:
            d.close()

    def screenshot(self, wid, path):
        subprocess.run(["import", "-display", self.display, "-window", str(wid), str(path)],
                       check=True, timeout=60, capture_output=True)


def start_xvfb(*args):
    """Xvfb on a free display number (it picks one and tells it through -displayfd)."""
    r, w = os.pipe()
    proc = subprocess.Popen(["Xvfb", "-displayfd", str(w), "-screen", "0", "1600x1200x24",
                             "-nolisten", "tcp", *args], pass_fds=(w,),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(w)
    # Read up to the newline: Xvfb writes the number and "\n" apart, and a pipe closed in
    # between kills it (SIGPIPE).
    data, deadline = b"", time.time() + 30
    try:
        while not data.endswith(b"\n") and select.select([r], [], [], deadline - time.time())[0]:
            chunk = os.read(r, 64)
            if not chunk:
                break
            data += chunk
    finally:
        os.close(r)
    num = data.decode().strip()
    if not num.isdigit():
        proc.kill()
        raise AssertionError(f"Xvfb did not start (exit {proc.wait()})")
    return XServer(proc, f":{num}")


def stop_xvfb(x):
    if x.proc.poll() is None:
        x.proc.terminate()
        x.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def xserver():
    _need_tools()
    x = start_xvfb()
    yield x
    stop_xvfb(x)


def close_window(xserver, wid, proc, title, attempts=3, wait=20):
    """Close the window as a window manager does and wait for `tart run` to end. Under Xvfb,
    without a window manager, QEMU 7.2's GTK display at times drops the request (measured: 1
    in 4-6 right after start; a QEMU trace shows that its quit is never called): ask again, as
    a user clicks again."""
    for _ in range(attempts):
        if title not in xserver.windows():
            break
        xserver.close(wid)
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            pass
    proc.wait(timeout=wait)


def ocr(png, work):
    """The text of the upper part of a screen: white-on-black console text, enlarged."""
    big = work / (png.stem + "-ocr.png")
    subprocess.run(["convert", str(png), "-crop", "1600x320+0+0", "+repage", "-colorspace",
                    "Gray", "-negate", "-filter", "point", "-resize", "300%", str(big)],
                   check=True, timeout=120, capture_output=True)
    p = subprocess.run(["tesseract", str(big), "-", "--psm", "6"], capture_output=True,
                       text=True, timeout=120)
    return p.stdout


def shows_login(text):
    return "tart-debian" in text and "login" in text


def wait_screen(xserver, wid, work, check, what, timeout=120):
    """Screenshots of the window, read by OCR, until check(text) holds."""
    shot = work / "window.png"
    text, deadline = "", time.time() + timeout
    while time.time() < deadline:
        xserver.screenshot(wid, shot)
        text = ocr(shot, work)
        if check(text):
            return shot
        time.sleep(1)
    raise AssertionError(f"the window does not show {what}: {text!r} (see {shot})")


def vnc_capture(port, password, png, timeout=60):
    """gvnccapture prompts for the password on its terminal: give it one (a pty), and answer
    once it has turned echo off (typed earlier, the line would be flushed and lost)."""
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp("gvnccapture", ["gvnccapture", f"127.0.0.1:{port - 5900}", str(png)])
    out, sent, deadline = b"", False, time.time() + timeout
    try:
        while time.time() < deadline:
            if not sent and b"Password:" in out and not termios.tcgetattr(fd)[3] & termios.ECHO:
                os.write(fd, password.encode() + b"\n")
                sent = True
            if select.select([fd], [], [], 0.05)[0]:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    break
                if not data:
                    break
                out += data
    finally:
        if time.time() >= deadline:
            os.kill(pid, 9)
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    return os.waitstatus_to_exitcode(status), out.decode(errors="replace")


def test_debian_window_shows_the_console_vnc_too_and_closing_stops_the_vm(
        tart, debian_guest, xserver, tmp_path):
    # A comma in the name: QEMU's option syntax must not split it.
    name = "deb,win"
    tart.run("create", "--linux", name, "--disk-size", "3")
    tart.run("set", name, "--cpu", "2", "--memory", "1024", "--display", "1152x864")
    subprocess.run(["cp", "--sparse=always", str(debian_guest / "disk.img"),
                    str(tart.vm_dir(name) / "disk.img")], check=True)
    proc = start_run(tart, name, "--graphics", "--vnc", env=xserver.env)
    line = proc.stdout.readline()
    m = VNC_URL.search(line)
    assert m, f"no VNC URL: {line!r} {'' if line else finish(proc)[2]}"
    password, port = m.group(1), int(m.group(2))

    wid = xserver.wait_window(f"QEMU ({name})", proc)
    wait_serial(tart, name, r"tart-debian login:", proc, timeout=400)
    # tty1's getty starts beside ttyS0's: read the window until it shows the login prompt.
    shot = wait_screen(xserver, wid, tmp_path, shows_login, "the guest's login prompt")
    # The window holds the guest's screen of the configured size (plus QEMU's menu bar).
    size = subprocess.run(["identify", "-format", "%w %h", str(shot)], capture_output=True,
                          text=True, check=True).stdout.split()
    assert int(size[0]) == 1152 and int(size[1]) >= 864, size

    # A real VNC client with the printed password sees the same screen ...
    vshot = tmp_path / "vnc.png"
    code, out = vnc_capture(port, password, vshot)
    assert code == 0 and vshot.exists(), out
    vsize = subprocess.run(["identify", "-format", "%w %h", str(vshot)], capture_output=True,
                           text=True, check=True).stdout.split()
    assert vsize == ["1152", "864"], vsize
    vtext = ocr(vshot, tmp_path)
    assert shows_login(vtext), f"the VNC screen does not show the login prompt: {vtext!r}"
    # ... and a wrong password is refused.
    bad = tmp_path / "refused.png"
    code, out = vnc_capture(port, "wrong-pw", bad)
    assert code != 0 and not bad.exists(), out

    # The keyboard reaches the guest: a user name typed into the window is echoed by the
    # getty, and login asks for the password ("Pass": OCR reads that font's w as u at times).
    # A getty that restarts under the keys loses them: type again (3 times at most).
    for attempt in range(3):
        xserver.type(wid, "admin\n")
        try:
            wait_screen(xserver, wid, tmp_path,
                        lambda t: re.search(r"login: ?admin", t) and "Pass" in t,
                        "the typed user name", timeout=40)
            break
        except AssertionError:
            if attempt == 2:
                raise

    # Closing the window (as a window manager does) stops the VM; run exits 0.
    close_window(xserver, wid, proc, f"QEMU ({name})")
    code, _, err = finish(proc, timeout=60)
    assert code == 0, err
    assert "the VM window was closed" in err, err
    assert not (tart.vm_dir(name) / "run.json").exists()
    assert "stopped" in tart.run("get", name).stdout


def test_tiny_window_by_default_and_how_flags_combine(tart, tiny_guest, xserver):
    make_tiny_vm(tart, tiny_guest, "tw", test="wait")
    title = "QEMU (tw)"
    # Neither flag and a display: the window, titled with the VM's name; closing it stops
    # the VM.
    proc = start_run(tart, "tw", env=xserver.env)
    wid = xserver.wait_window(title, proc)
    wait_serial(tart, "tw", "TART-TEST-MARKER", proc)
    close_window(xserver, wid, proc, title)
    code, out, err = finish(proc)
    assert code == 0 and "the VM window was closed" in err, err

    # --no-graphics: no window. --vnc: VNC instead of the window, as in Tart.
    for flags in (["--no-graphics"], ["--vnc"]):
        proc = start_run(tart, "tw", *flags, env=xserver.env)
        wait_serial(tart, "tw", "TART-TEST-MARKER", proc)
        # QEMU opens its window before the guest runs: by the marker it would be there.
        assert title not in xserver.windows(), flags
        assert tart.run("stop", "tw").returncode == 0
        code, out, err = finish(proc)
        assert code == 0, err
        assert ("VNC server is running at vnc://" in out) == ("--vnc" in flags), out


def test_graphics_without_qemus_gtk_display_is_an_error(tart, tiny_guest, xserver, tmp_path):
    """A QEMU without the GTK module (qemu-system-gui missing): --graphics names the package;
    without --graphics the VM runs headless with a notice."""
    fake = tmp_path / "bin"
    fake.mkdir()
    real = shutil.which("qemu-system-x86_64")
    (fake / "qemu-system-x86_64").write_text(
        "#!/bin/sh\n"
        "if [ \"$1 $2\" = \"-display help\" ]; then\n"
        "  printf 'Available display backend types:\\nnone\\ncurses\\n'; exit 0\n"
        f"fi\nexec {real} \"$@\"\n")
    (fake / "qemu-system-x86_64").chmod(0o755)
    env = dict(xserver.env, PATH=f"{fake}:{os.environ['PATH']}")
    make_tiny_vm(tart, tiny_guest, "nogtk", test="poweroff")
    p = tart.run("run", "nogtk", "--graphics", check=False, env=env, timeout=120)
    assert p.returncode == 1, p
    assert "qemu-system-gui" in p.stderr, p.stderr
    p = tart.run("run", "nogtk", check=False, env=env, timeout=180)
    assert p.returncode == 0, p.stderr
    assert "no VM window" in p.stderr and "qemu-system-gui" in p.stderr, p.stderr
    assert "QEMU (nogtk)" not in xserver.windows()


def test_graphics_without_a_display_is_an_error_and_a_dead_display_no_window(tart, tiny_guest):
    """Needs no X server: --graphics without a display fails before QEMU starts (exit 1, not a
    usage error: the same command line works on a desktop); a DISPLAY naming no server leaves a
    default run headless, with a notice."""
    make_tiny_vm(tart, tiny_guest, "nodisp", test="poweroff")
    p = tart.run("run", "nodisp", "--graphics", check=False, timeout=120)
    assert p.returncode == 1, p
    assert "--graphics needs a display" in p.stderr, p.stderr
    assert "neither DISPLAY nor WAYLAND_DISPLAY is set" in p.stderr, p.stderr
    assert not (tart.vm_dir("nodisp") / "serial.log").exists()  # QEMU never started
    p = tart.run("run", "nodisp", "--graphics", "--no-graphics", check=False)
    assert p.returncode == 64, p
    # A display number nothing listens on (abstract socket and /tmp/.X11-unix both absent).
    dead = {"DISPLAY": f":{50000 + os.getpid() % 9000}"}
    p = tart.run("run", "nodisp", "--graphics", check=False, env=dead, timeout=120)
    assert p.returncode == 1 and "cannot connect to DISPLAY" in p.stderr, p
    p = tart.run("run", "nodisp", check=False, env=dead, timeout=180)
    assert p.returncode == 0, p.stderr
    assert "no VM window: cannot connect to DISPLAY" in p.stderr, p.stderr


def test_a_display_that_refuses_the_user_is_explained(tart, tiny_guest, xserver, tmp_path):
    """An X server that wants a cookie this user lacks (sudo without XAUTHORITY, say): QEMU
    cannot open the window; run fails (exit 1) and says what to do."""
    cookie = tmp_path / "Xauthority"
    host = socket.gethostname().encode()

    def field(b):
        return struct.pack(">H", len(b)) + b

    # one MIT-MAGIC-COOKIE-1 entry for any display number (empty number field) of this host
    cookie.write_bytes(struct.pack(">H", 256) + field(host) + field(b"") +
                       field(b"MIT-MAGIC-COOKIE-1") + field(os.urandom(16)))
    x = start_xvfb("-auth", str(cookie))
    try:
        make_tiny_vm(tart, tiny_guest, "noauth", test="poweroff")
        env = dict(x.env, XAUTHORITY=str(tmp_path / "none"))
        p = tart.run("run", "noauth", check=False, env=env, timeout=120)
        assert p.returncode == 1, p
        assert "QEMU cannot open the VM window" in p.stderr, p.stderr
        assert "--no-graphics" in p.stderr, p.stderr
    finally:
        stop_xvfb(x)


def suspend_running(tart, name, proc):
    """The tiny guest in uptime mode ticks: suspend it there; run exits 0."""
    wait_serial(tart, name, r"TART-TEST-UPTIME ", proc)
    p = tart.run("suspend", name, check=False, timeout=300)
    assert p.returncode == 0, p.stderr
    code, _, err = finish(proc)
    assert code == 0, err
    assert (tart.vm_dir(name) / "state.vzvmsave").exists()


def resumed_without_window(tart, name, proc, xserver, title):
    """It carries on ticking (no new boot), with no window; stopped, it exits 0."""
    wait_serial(tart, name, r"TART-TEST-UPTIME ", proc)
    assert "TART-TEST-BOOTED" not in (tart.vm_dir(name) / "serial.log").read_text(errors="replace")
    assert title not in xserver.windows()
    assert tart.run("stop", name, check=False, timeout=120).returncode == 0
    code, _, err = finish(proc)
    assert code == 0, err
    assert "resuming VM..." in err and "cannot be used" not in err, err
    return err


def test_resume_follows_the_saved_screen(tart, tiny_guest, xserver):
    """Window and headless are not part of a saved state; the screen devices are. A VM
    suspended headless resumes where a display answers (headless, with one notice), and one
    suspended with its window resumes under --no-graphics (its devices kept, no window): both
    resume where they were instead of booting cold."""
    make_tiny_vm(tart, tiny_guest, "ts", test="uptime")
    title = "QEMU (ts)"
    # Suspended headless (tart's test environment has no display), run on a desktop.
    suspend_running(tart, "ts", start_run(tart, "ts"))
    err = resumed_without_window(tart, "ts", start_run(tart, "ts", env=xserver.env), xserver,
                                 title)
    assert err.count("was suspended without a screen: it resumes headless, without its "
                     "window") == 1, err

    # Suspended with its window (a cold boot: the state was used up), run --no-graphics.
    proc = start_run(tart, "ts", env=xserver.env)
    xserver.wait_window(title, proc)
    suspend_running(tart, "ts", proc)
    err = resumed_without_window(tart, "ts", start_run(tart, "ts", "--no-graphics",
                                                       env=xserver.env), xserver, title)
    assert "without a screen" not in err, err
