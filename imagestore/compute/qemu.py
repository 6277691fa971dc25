"""Booting a VM under qemu on this machine: the launch spec (firmware, TPM, disks in LUN
order, the seed), the daemonized process (pidfile, QMP socket and serial log in the VM's
runtime directory), and shutdown through QMP.

Hyper-V generations map to firmware as Azure's do:

* ``V1`` -> SeaBIOS (qemu's default), machine ``pc``;
* ``V2`` -> OVMF, machine ``q35``: the shared read-only ``OVMF_CODE_4M.fd`` plus a per-VM
  copy of ``OVMF_VARS_4M.fd`` (the VM's NVRAM, kept across stop/start);
* Trusted Launch -> the SMM secure-boot build ``OVMF_CODE_4M.secboot.fd`` with
  ``OVMF_VARS_4M.ms.fd`` (Microsoft's keys enrolled, secure boot on) or, with secure boot
  disabled, the empty ``OVMF_VARS_4M.fd``; a vTPM is ``swtpm socket --tpm2`` attached as
  ``tpm-crb``. Both files come with Debian's ``ovmf`` package (``IMAGESTORE_OVMF_DIR``
  overrides where they are looked up).

Disks are virtio-blk in LUN order (OS disk first, serial ``os``, then ``lun<N>``), the seed
last (read-only, serial ``cidata``); formats are always passed explicitly. The accelerator is
TCG unless ``IMAGESTORE_QEMU_ACCEL`` says ``kvm`` or ``auto`` (KVM when /dev/kvm opens
and accepts KVM_CREATE_VM).

Sockets live in the runtime directory but are named relative to it (qemu and swtpm run with
it as their working directory, this process connects through ``/proc/self/fd``), so a deep
store path never hits the 108-byte limit of a Unix socket address."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field

from ..errors import Conflict, IOFailure, NotFound, TimedOut
from ..fsutil import pid_alive

QEMU = "qemu-system-x86_64"
SWTPM = "swtpm"

PIDFILE = "qemu.pid"
QMP_SOCKET = "qmp.sock"
SERIAL_LOG = "serial.log"
NVRAM = "OVMF_VARS.fd"
TPM_DIR = "tpm"
TPM_SOCKET = "tpm/swtpm.sock"
TPM_PIDFILE = "tpm/swtpm.pid"


def ovmf_dir() -> str:
    return os.environ.get("IMAGESTORE_OVMF_DIR") or "/usr/share/OVMF"


@dataclass
class DiskSpec:
    """One virtio disk: file, format (raw/qcow2/vhdx/vpc), its serial (os, lunN, cidata)."""

    path: str
    fmt: str
    serial: str
    readonly: bool = False


@dataclass
class LaunchSpec:
    """Everything qemu needs to boot one VM."""

    name: str
    runtime_dir: str
    generation: str = "V1"
    trusted_launch: bool = False
    secure_boot: bool = False
    vtpm: bool = False
    vcpus: int = 1
    memory_mib: int = 1024
    disks: list[DiskSpec] = field(default_factory=list)
    accel: str = "tcg"

    @property
    def uefi(self) -> bool:
        return self.generation == "V2"

    def firmware(self) -> tuple[str, str] | None:
        """(CODE, VARS template) for UEFI VMs, None for SeaBIOS."""
        if not self.uefi:
            return None
        d = ovmf_dir()
        if self.trusted_launch:
            code = "OVMF_CODE_4M.secboot.fd"
            tmpl = "OVMF_VARS_4M.ms.fd" if self.secure_boot else "OVMF_VARS_4M.fd"
        else:
            code, tmpl = "OVMF_CODE_4M.fd", "OVMF_VARS_4M.fd"
        out = (os.path.join(d, code), os.path.join(d, tmpl))
        for p in out:
            if not os.path.isfile(p):
                raise NotFound(f"UEFI firmware {p} not found (install Debian package 'ovmf' or "
                               f"set IMAGESTORE_OVMF_DIR)")
        return out

    def machine(self) -> str:
        if not self.uefi:
            return "pc"
        return "q35,smm=on" if self.trusted_launch else "q35"

    def argv(self) -> list[str]:
        """qemu's command line; relative names are inside the runtime directory."""
        a = [QEMU, "-name", f"imagestore-{self.name}", "-machine", self.machine(),
             "-m", str(self.memory_mib), "-smp", str(self.vcpus)]
        a += ["-accel", "kvm", "-cpu", "host"] if self.accel == "kvm" else ["-accel", "tcg"]
        fw = self.firmware()
        if fw is not None:
            if self.trusted_launch:
                a += ["-global", "driver=cfi.pflash01,property=secure,value=on"]
            a += ["-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={_q(fw[0])}",
                  "-drive", f"if=pflash,format=raw,unit=1,file={NVRAM}"]
        if self.vtpm:
            a += ["-chardev", f"socket,id=chrtpm,path={TPM_SOCKET}",
                  "-tpmdev", "emulator,id=tpm0,chardev=chrtpm", "-device", "tpm-crb,tpmdev=tpm0"]
        for i, d in enumerate(self.disks):
            ro = ",readonly=on" if d.readonly else ""
            a += ["-drive", f"if=none,id=d{i},file={_q(d.path)},format={d.fmt}{ro}",
                  "-device", f"virtio-blk-pci,drive=d{i},serial={d.serial}"
                  + (",bootindex=0" if i == 0 else "")]
        a += ["-nic", "none", "-display", "none", "-no-reboot",
              "-serial", f"file:{SERIAL_LOG}",
              "-qmp", f"unix:{QMP_SOCKET},server=on,wait=off",
              "-daemonize", "-pidfile", PIDFILE]
        return a

    def swtpm_argv(self) -> list[str]:
        # swtpm chdirs to / when it daemonizes and opens its state after that: the state
        # directory is absolute; the control socket (made before) and the log may be relative
        tpm_dir = os.path.join(os.path.abspath(self.runtime_dir), TPM_DIR)
        return [SWTPM, "socket", "--tpm2", "--tpmstate", f"dir={tpm_dir}",
                "--ctrl", f"type=unixio,path={TPM_SOCKET}", "--terminate",
                "--log", f"file={TPM_DIR}/swtpm.log", "--daemon", "--pid", f"file={TPM_PIDFILE}"]


def _q(path: str) -> str:
    """A path inside a qemu option string (commas doubled)."""
    return path.replace(",", ",,")


def choose_accel() -> str:
    """tcg (default), kvm, or auto = kvm when /dev/kvm works."""
    want = (os.environ.get("IMAGESTORE_QEMU_ACCEL") or "tcg").lower()
    if want in ("tcg", "kvm"):
        return want
    try:
        import fcntl

        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
        try:
            vm = fcntl.ioctl(fd, 0xAE01, 0)  # KVM_CREATE_VM
            os.close(vm)
            return "kvm"
        finally:
            os.close(fd)
    except OSError:
        return "tcg"


def require_tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise NotFound(f"{name} is not installed (Debian package '{package}'; scripts/setup.sh "
                       f"installs it)")
    return path


# -- process state ------------------------------------------------------------------------------


def _read_pid(path: str) -> int | None:
    try:
        with open(path, encoding="ascii") as fh:
            return int(fh.read().strip() or 0) or None
    except (OSError, ValueError):
        return None


def _is(pid: int, what: str) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return what.encode() in fh.read()
    except OSError:
        return False


def running_pid(runtime_dir: str) -> int | None:
    """The pid of this VM's qemu, if it runs."""
    pid = _read_pid(os.path.join(runtime_dir, PIDFILE))
    if pid and pid_alive(pid) and _is(pid, "qemu-system"):
        return pid
    return None


def _swtpm_pid(runtime_dir: str) -> int | None:
    pid = _read_pid(os.path.join(runtime_dir, TPM_PIDFILE))
    if pid and pid_alive(pid) and _is(pid, "swtpm"):
        return pid
    return None


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.1)
    return not pid_alive(pid)


# -- start / stop -------------------------------------------------------------------------------


def start(spec: LaunchSpec) -> int:
    """Boot the VM: per-VM NVRAM copy on first boot, swtpm for a vTPM, qemu daemonized.
    Returns qemu's pid. Refuses a VM whose qemu already runs."""
    require_tool(QEMU, "qemu-system-x86")
    rt = spec.runtime_dir
    os.makedirs(rt, exist_ok=True)
    if running_pid(rt):
        raise Conflict(f"VM '{spec.name}' is already running")
    fw = spec.firmware()
    if fw is not None and not os.path.exists(os.path.join(rt, NVRAM)):
        tmp = os.path.join(rt, NVRAM + ".tmp")
        shutil.copyfile(fw[1], tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, os.path.join(rt, NVRAM))
    for stale in (PIDFILE, QMP_SOCKET, TPM_SOCKET, TPM_PIDFILE):
        try:
            os.unlink(os.path.join(rt, stale))
        except FileNotFoundError:
            pass
    if spec.vtpm:
        require_tool(SWTPM, "swtpm")
        os.makedirs(os.path.join(rt, TPM_DIR), exist_ok=True)
        p = subprocess.run(spec.swtpm_argv(), cwd=rt, capture_output=True, text=True, timeout=30)
        if p.returncode != 0:
            raise IOFailure(f"swtpm for VM '{spec.name}' failed: {_first(p.stderr)}")
        deadline = time.monotonic() + 10
        while not os.path.exists(os.path.join(rt, TPM_SOCKET)):
            if time.monotonic() > deadline:
                raise IOFailure(f"swtpm for VM '{spec.name}' made no socket in 10 s")
            time.sleep(0.05)
    with open(os.path.join(rt, "qemu.argv.json"), "w", encoding="utf-8") as fh:
        json.dump(spec.argv(), fh, indent=1)
    p = subprocess.run(spec.argv(), cwd=rt, capture_output=True, text=True, timeout=120,
                       stdin=subprocess.DEVNULL)
    if p.returncode != 0:
        _kill_swtpm(rt)
        raise IOFailure(f"qemu for VM '{spec.name}' failed to start: {_first(p.stderr)}")
    pid = running_pid(rt)
    if pid is None:
        _kill_swtpm(rt)
        raise IOFailure(f"qemu for VM '{spec.name}' exited at once (see {rt}/{SERIAL_LOG})")
    return pid


def _first(text: str) -> str:
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    return lines[0] if lines else "no message"


def _kill_swtpm(rt: str) -> None:
    pid = _swtpm_pid(rt)
    if pid:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        _wait_gone(pid, 5)


def stop(runtime_dir: str, name: str, *, timeout: float = 60.0, force: bool = False) -> str:
    """Shut the VM down: ACPI power button through QMP, then SIGTERM/SIGKILL when it has not
    powered off within ``timeout`` seconds. Returns how it ended: ``acpi``, ``killed`` or
    ``not-running``."""
    pid = running_pid(runtime_dir)
    how = "not-running"
    if pid:
        how = "killed"
        if not force:
            try:
                qmp(runtime_dir, "system_powerdown")
                if _wait_gone(pid, timeout):
                    how = "acpi"
            except OSError:
                pass
        if how != "acpi":
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    break
                if _wait_gone(pid, 5):
                    break
            if pid_alive(pid):
                raise TimedOut(f"qemu of VM '{name}' (pid {pid}) did not end")
    _kill_swtpm(runtime_dir)
    for f in (PIDFILE, QMP_SOCKET, TPM_SOCKET, TPM_PIDFILE):
        try:
            os.unlink(os.path.join(runtime_dir, f))
        except FileNotFoundError:
            pass
    return how


# -- QMP ----------------------------------------------------------------------------------------


def qmp(runtime_dir: str, command: str, arguments: dict | None = None,
        timeout: float = 10.0) -> dict:
    """Run one QMP command on the VM's monitor socket; returns its ``return`` value."""
    dfd = os.open(runtime_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(timeout)
        s.connect(f"/proc/self/fd/{dfd}/{QMP_SOCKET}")
        f = s.makefile("rwb")
        json.loads(f.readline())  # greeting
        for cmd in ({"execute": "qmp_capabilities"},
                    {"execute": command, **({"arguments": arguments} if arguments else {})}):
            f.write(json.dumps(cmd).encode() + b"\n")
            f.flush()
            while True:
                msg = json.loads(f.readline() or b"{}")
                if "event" in msg:
                    continue
                break
            if "error" in msg:
                raise OSError(f"QMP {cmd['execute']}: {msg['error'].get('desc')}")
        return msg.get("return", {})
    finally:
        s.close()
        os.close(dfd)


def serial_log(runtime_dir: str) -> str:
    """The serial console output of the current (or last) boot, or ''."""
    try:
        with open(os.path.join(runtime_dir, SERIAL_LOG), "rb") as fh:
            return fh.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""


def wait_for_serial(runtime_dir: str, needle: str, timeout: float) -> bool:
    """Wait until ``needle`` appears on the serial console (False on timeout or when qemu
    ended first)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if needle in serial_log(runtime_dir):
            return True
        if running_pid(runtime_dir) is None:
            return needle in serial_log(runtime_dir)
        time.sleep(0.2)
    return False
