#!/usr/bin/python3
"""sealkeep against what a user would pick instead, with one harness and one secret value.

Starts everything it measures in a temp folder and stops it at the end, even on failure:
sealkeepd on its own SoftHSM2 token (a second one with no data-key cache for the cold
reads), a swtpm, a PostgreSQL 15 server (as `nobody`, Unix socket only), a gpg-agent in a
temp GNUPGHOME, and a fresh session keyring. The value is 32 random bytes; it goes to each
tool through stdin, a file or a syscall, never through an argv, and is never printed.

  1. a process per read (what a shell script or ExecStartPre= does): wall time from spawn to
     exit and the child's CPU time (user+sys from wait4), round-robin over the tools;
  2. a long-lived client: keep-alive GET to sealkeepd, the keyring read in-process, a
     primary-key SELECT on a persistent PostgreSQL connection; 1 to 16 client threads;
  3. durable writes: sealkeep PUT against a PostgreSQL upsert (synchronous_commit=on), and
     the file system's fsync floor (4 KiB O_DSYNC pwrite).

Prints a table and writes OUT/peers-DATE.md (table + machine), OUT/peers-DATE-cdf.png and
OUT/peers-DATE-throughput.png. Figures only: nothing here asserts a timing.

  tools/bench/peers.py [--build DIR] [--out DIR] [--runs N] [--seconds S] [--clients 1,2,4,8,16]

Client threads share one Python interpreter, so with many clients the harness itself is
part of what is measured, the same way for every tool: compare within one run.
"""

import argparse
import base64
import contextlib
import ctypes
import datetime
import json
import os
import platform
import pwd
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PG_BIN = "/usr/lib/postgresql/15/bin"
PATH = "bench/peer"  # the secret's path in sealkeep, and its name everywhere else
PERSISTENT = "0x81000001"  # the sealed object's handle on the swtpm


def log(msg):
    print(f"peers: {msg}", file=sys.stderr, flush=True)


class Unavailable(Exception):
    """A tool that cannot be measured here; its text becomes the table's "n/a: ..." cell."""


# ---------------------------------------------------------------------------------------
# Statistics


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(p * len(v)))] if v else float("nan")


def fmt_time(s):
    if s != s:  # nan
        return "-"
    if s < 1e-3:
        return f"{s * 1e6:.0f} µs" if s >= 1e-5 else f"{s * 1e6:.1f} µs"
    if s < 1:
        return f"{s * 1e3:.2f} ms" if s < 1e-2 else f"{s * 1e3:.1f} ms"
    return f"{s:.2f} s"


def fmt_rate(r):
    return "-" if r != r else f"{r:,.0f}"


# ---------------------------------------------------------------------------------------
# Processes this script starts, stopped in reverse order by one ExitStack


def run(argv, stdin=None, env=None, cwd=None, check=True):
    """Runs a setup command; its output goes to the log only on failure."""
    p = subprocess.run(argv, input=stdin, env=env, cwd=cwd, capture_output=True)
    if check and p.returncode != 0:
        raise RuntimeError(f"{argv[0]} exited {p.returncode}: {p.stderr.decode(errors='replace')[-800:]}")
    return p


def stop_process(proc, name, sig=signal.SIGTERM, timeout=30):
    if proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        log(f"{name} (pid {proc.pid}) did not exit within {timeout} s of {sig.name}: killing it")
        proc.kill()
        proc.wait()


def free_port_pair():
    """Two consecutive free TCP ports on 127.0.0.1 (swtpm's server and control ports)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port < 65535:
            with contextlib.suppress(OSError), socket.socket() as t:
                t.bind(("127.0.0.1", port + 1))
                return port
    raise RuntimeError("no two consecutive free ports")


def wait_for(predicate, what, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise RuntimeError(f"{what} not ready within {timeout} s")


# ---------------------------------------------------------------------------------------
# A minimal HTTP/1.1 keep-alive client over a Unix socket (docs/api.md)


class Http:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.buf = b""

    def close(self):
        self.sock.close()

    def request(self, method, target, body=b""):
        head = f"{method} {target} HTTP/1.1\r\nHost: sk\r\n"
        if body or method in ("PUT", "POST"):
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        self.sock.sendall(head.encode() + b"\r\n" + body)
        while (end := self.buf.find(b"\r\n\r\n")) < 0:
            self._fill()
        header = self.buf[:end].decode("latin-1")
        self.buf = self.buf[end + 4 :]
        status = int(header[9:12])
        length = 0
        for line in header.split("\r\n")[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        while len(self.buf) < length:
            self._fill()
        body, self.buf = self.buf[:length], self.buf[length:]
        return status, body

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("sealkeepd closed the connection")
        self.buf += chunk


# ---------------------------------------------------------------------------------------
# The kernel keyring through syscall(2): no argv, no library beyond libc

_SYSCALLS = {"x86_64": (248, 250), "aarch64": (217, 219)}  # add_key, keyctl
KEY_SPEC_SESSION_KEYRING = -3
KEYCTL_JOIN_SESSION_KEYRING, KEYCTL_UNLINK, KEYCTL_READ = 1, 9, 11


class Keyring:
    """A fresh anonymous session keyring for this process (children inherit it) holding one
    user key. read() is one keyctl(KEYCTL_READ) syscall; ctypes releases the GIL around it."""

    def __init__(self, value):
        if platform.machine() not in _SYSCALLS:
            raise Unavailable(f"no keyctl syscall numbers for {platform.machine()}")
        self.add_key_nr, self.keyctl_nr = _SYSCALLS[platform.machine()]
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.libc.syscall.restype = ctypes.c_long
        if self._keyctl(KEYCTL_JOIN_SESSION_KEYRING, None) < 0:
            raise Unavailable(f"keyctl(JOIN_SESSION_KEYRING): {os.strerror(ctypes.get_errno())}")
        buf = ctypes.create_string_buffer(value, len(value))
        self.id = self.libc.syscall(self.add_key_nr, b"user", b"sk:bench", buf, ctypes.c_size_t(len(value)),
                                    ctypes.c_int(KEY_SPEC_SESSION_KEYRING))
        if self.id < 0:
            raise Unavailable(f"add_key: {os.strerror(ctypes.get_errno())}")
        self.size = len(value)

    def _keyctl(self, op, *args):
        return self.libc.syscall(self.keyctl_nr, ctypes.c_int(op), *args)

    def reader(self):
        buf = ctypes.create_string_buffer(self.size)
        syscall, nr, key, size = self.libc.syscall, self.keyctl_nr, ctypes.c_long(self.id), ctypes.c_size_t(self.size)
        op = ctypes.c_int(KEYCTL_READ)

        def read():
            if syscall(nr, op, key, buf, size) != self.size:
                raise RuntimeError("keyctl read failed")
            return buf.raw

        return read

    def remove(self):
        self._keyctl(KEYCTL_UNLINK, ctypes.c_long(self.id), ctypes.c_int(KEY_SPEC_SESSION_KEYRING))


# ---------------------------------------------------------------------------------------
# The peers' set-up


class Sealkeepd:
    """sealkeepd on a fresh SoftHSM2 token, shaped like `tools/dev run`: epoch anchors, a
    policy where root is admin, the audit log on. cache=False sets dek_entries = 0, the API
    benchmark's cold case: every read unwraps its data key in SoftHSM2."""

    def __init__(self, build, dir, cache, stack):
        self.dir = dir
        state = os.path.join(dir, "state")
        os.makedirs(os.path.join(state, "run"), mode=0o700)
        os.makedirs(os.path.join(state, "audit"), mode=0o700)
        tokens = os.path.join(state, "softhsm", "tokens")
        os.makedirs(tokens, mode=0o700)
        conf = os.path.join(state, "softhsm", "softhsm2.conf")
        write(conf, f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n")
        self.env = dict(os.environ, SOFTHSM2_CONF=conf)
        for name in ("hsm-pin", "hsm-so-pin"):
            write(os.path.join(state, name), os.urandom(12).hex())
        run([f"{build}/tools/sealkeep", "hsm", "provision", "--init", "--token", "sealkeep",
             "--pin-file", f"{state}/hsm-pin", "--so-pin-file", f"{state}/hsm-so-pin"], env=self.env)
        write(os.path.join(state, "policy.toml"),
              'version = 1\n[roles.admin]\ngrants = [{ capabilities = ["read", "list", "write", "delete", '
              '"destroy", "rollback", "snapshot", "admin"], paths = ["**"] }]\n'
              '[[bindings]]\nname = "root"\nroles = ["admin"]\nmatch = { uid = 0 }\n')
        self.socket = os.path.join(state, "run", "api.sock")
        config = os.path.join(state, "sealkeep.toml")
        write(config,
              f'[agent]\nstate_dir = "{state}"\nsocket = "{self.socket}"\n\n[store]\nanchor_mode = "epoch"\n\n'
              f'[backend]\nkind = "pkcs11"\n\n[pkcs11]\nmodule = "/usr/lib/softhsm/libsofthsm2.so"\n'
              f'token = "sealkeep"\npin_file = "hsm-pin"\nsync_dir = "softhsm/tokens"\n\n'
              f'[policy]\nfile = "policy.toml"\n\n[audit]\ndir = "audit"\n'
              + ("" if cache else "\n[cache]\ndek_entries = 0\n"))
        self.log = open(os.path.join(dir, "sealkeepd.log"), "ab")
        stack.callback(self.log.close)
        self.proc = subprocess.Popen([f"{build}/agent/sealkeepd", "--config", config], env=self.env,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.log)
        stack.callback(stop_process, self.proc, "sealkeepd")
        wait_for(self._healthy, "sealkeepd")

    def _healthy(self):
        if self.proc.poll() is not None:
            raise RuntimeError(f"sealkeepd exited {self.proc.returncode} at start (log: {self.dir}/sealkeepd.log)")
        with contextlib.suppress(OSError):
            c = Http(self.socket)
            try:
                return c.request("GET", "/v1/health")[0] == 200
            finally:
                c.close()
        return False

    def put(self, path, value):
        c = Http(self.socket)
        status, _ = c.request("PUT", f"/v1/secrets/{path}", json.dumps({"value_b64": b64(value)}).encode())
        c.close()
        if status != 200:
            raise RuntimeError(f"PUT {path}: {status}")


class Postgres:
    """PostgreSQL 15 in DIR/pg, run as `nobody` (it refuses root), listening on a Unix socket
    in that folder only; trust authentication, which that folder's permissions confine."""

    def __init__(self, dir, stack):
        if not os.path.exists(f"{PG_BIN}/initdb"):
            raise Unavailable(f"{PG_BIN}/initdb missing (postgresql 15)")
        import psycopg2  # Debian's python3-psycopg2

        self.psycopg2 = psycopg2
        self.dir = os.path.join(dir, "pg")
        os.mkdir(self.dir, 0o700)
        nobody = pwd.getpwnam("nobody")
        os.chown(self.dir, nobody.pw_uid, nobody.pw_gid)
        as_nobody = ["runuser", "-u", "nobody", "--"]
        data = os.path.join(self.dir, "data")
        run(as_nobody + [f"{PG_BIN}/initdb", "-D", data, "-U", "bench", "--auth=trust", "--locale=C",
                         "-E", "UTF8", "--no-sync"], cwd=self.dir)
        with open(os.path.join(data, "postgresql.conf"), "a") as f:
            f.write(f"listen_addresses = ''\nunix_socket_directories = '{self.dir}'\n"
                    "fsync = on\nsynchronous_commit = on\nmax_connections = 40\n")
        self.pg_ctl = as_nobody + [f"{PG_BIN}/pg_ctl", "-D", data, "-s"]
        run(self.pg_ctl + ["-l", os.path.join(self.dir, "log"), "-w", "start"], cwd=self.dir)
        stack.callback(self._stop)

    def _stop(self):
        p = run(self.pg_ctl + ["-m", "fast", "-w", "-t", "30", "stop"], cwd=self.dir, check=False)
        if p.returncode != 0:
            pid_file = os.path.join(self.dir, "data", "postmaster.pid")
            with contextlib.suppress(OSError, ValueError):
                pid = int(open(pid_file).readline())
                log(f"pg_ctl stop failed; killing the postmaster (pid {pid})")
                os.kill(pid, signal.SIGKILL)

    def connect(self):
        c = self.psycopg2.connect(host=self.dir, dbname="postgres", user="bench")
        c.autocommit = True
        return c


class Swtpm:
    def __init__(self, dir, stack):
        self.dir = os.path.join(dir, "swtpm")
        os.mkdir(self.dir, 0o700)
        self.port = free_port_pair()
        self.proc = subprocess.Popen(
            ["swtpm", "socket", "--tpm2", "--tpmstate", f"dir={self.dir}",
             "--server", f"type=tcp,port={self.port},bindaddr=127.0.0.1",
             "--ctrl", f"type=tcp,port={self.port + 1},bindaddr=127.0.0.1",
             "--flags", "not-need-init,startup-clear"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        stack.callback(stop_process, self.proc, "swtpm")

        def listening():
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2):
                return True
            return False

        wait_for(listening, "swtpm")
        self.tcti = f"swtpm:host=127.0.0.1,port={self.port}"


def write(path, text, mode=0o600):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb" if isinstance(text, bytes) else "w") as f:
        f.write(text)


def b64(value):
    return base64.b64encode(value).decode()


# ---------------------------------------------------------------------------------------
# 1. A process per read


class Spawned:
    """One tool read by spawning a process: argv, environment, and a check of its stdout."""

    def __init__(self, name, argv, env, decode=lambda out: out, after=None):
        self.name, self.argv, self.env, self.decode = name, argv, env, decode
        self.after = after  # run after each read, untimed
        self.wall, self.cpu, self.na = [], [], None


def spawn_once(tool, expected, err_path):
    """Spawn-to-exit wall time and the child's user+sys CPU time, reading its stdout through
    a pipe as `$(...)` would. The value read is compared, never printed."""
    r, w = os.pipe()
    err = os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    t0 = time.perf_counter()
    pid = os.posix_spawnp(tool.argv[0], tool.argv, tool.env,
                          file_actions=[(os.POSIX_SPAWN_DUP2, w, 1), (os.POSIX_SPAWN_DUP2, err, 2),
                                        (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0)])
    os.close(w)
    chunks = []
    while chunk := os.read(r, 65536):
        chunks.append(chunk)
    _, status, usage = os.wait4(pid, 0)
    t1 = time.perf_counter()
    os.close(r)
    os.close(err)
    if os.waitstatus_to_exitcode(status) != 0:
        with open(err_path, errors="replace") as f:
            raise RuntimeError(f"{tool.name}: exit {os.waitstatus_to_exitcode(status)}: {f.read()[-600:]}")
    if tool.decode(b"".join(chunks)) != expected:
        raise RuntimeError(f"{tool.name}: read a different value")
    return t1 - t0, usage.ru_utime + usage.ru_stime


def measure_spawns(tools, expected, runs, warmup, tmp):
    """Round-robin, so that drift on a shared machine falls on every tool alike. A tool that
    fails is marked n/a with its error and left out of later rounds."""
    err_path = os.path.join(tmp, "spawn.stderr")
    for i in range(warmup + runs):
        for tool in tools:
            if tool.na:
                continue
            try:
                wall, cpu = spawn_once(tool, expected, err_path)
            except RuntimeError as e:
                tool.na = f"failed on run {i + 1}: {' '.join(str(e).split())[:160]}"
                log(tool.na)
                continue
            if tool.after:
                tool.after()
            if i >= warmup:
                tool.wall.append(wall)
                tool.cpu.append(cpu)


def json_value(out):
    return base64.b64decode(json.loads(out)["value_b64"])


def set_up_spawned(args, tmp, value, agent, keyring, tpm):
    """The per-read commands, each set up with the same 32 bytes. Set-up failures become n/a."""
    env = dict(os.environ)
    tools = []
    sk = os.path.join(args.build, "tools", "sealkeep")
    tools.append(Spawned("sealkeep get", [sk, "get", PATH], dict(env, SEALKEEP_SOCKET=agent.socket)))
    tools.append(Spawned("curl --unix-socket", ["curl", "-sf", "--unix-socket", agent.socket,
                                                f"http://sk/v1/secrets/{PATH}?encoding=base64"], env, json_value))

    # systemd-creds with the host key: $SYSTEMD_CREDENTIAL_SECRET puts the host secret
    # (/var/lib/systemd/credential.secret) in the temp folder, so the host's is never made or read.
    creds_env = dict(env, SYSTEMD_CREDENTIAL_SECRET=os.path.join(tmp, "credential.secret"))
    host = Spawned("systemd-creds decrypt (host key)",
                   ["systemd-creds", "decrypt", "--name=bench", os.path.join(tmp, "host.cred"), "-"], creds_env)
    try:
        run(["systemd-creds", "encrypt", "--with-key=host", "--name=bench", "-", os.path.join(tmp, "host.cred")],
            stdin=value, env=creds_env)
    except RuntimeError as e:
        host.na = str(e).splitlines()[0][:160]
    tools.append(host)

    # There is no resource manager between these clients and the swtpm (no /dev/tpmrm0 here),
    # and systemd-creds 252 leaves an auth session loaded on each call: after three calls the
    # TPM is out of session slots. The kernel's resource manager flushes what a client left
    # when it closes its fd; `flush` does the same after every call, outside the timing.
    tpm_env = dict(creds_env, SYSTEMD_TPM2_DEVICE=tpm.tcti) if tpm else creds_env
    t = dict(env, TPM2TOOLS_TCTI=tpm.tcti) if tpm else env

    def flush():
        for kind in ("-t", "-l"):
            run(["tpm2_flushcontext", kind], env=t, check=False)

    creds_tpm = Spawned("systemd-creds decrypt (tpm2, swtpm)",
                        ["systemd-creds", "decrypt", "--name=bench", os.path.join(tmp, "tpm.cred"), "-"], tpm_env,
                        after=flush)
    unseal = Spawned("tpm2_unseal (swtpm)", ["tpm2_unseal", "-c", PERSISTENT], t, after=flush)
    if not tpm:
        creds_tpm.na = unseal.na = "swtpm did not start"
    else:
        try:  # a sealed data object under an ECC primary, made persistent like a provisioned secret
            d = tpm.dir
            for argv, stdin in (
                    (["tpm2_createprimary", "-Q", "-C", "o", "-G", "ecc", "-c", f"{d}/primary.ctx"], None),
                    (["tpm2_create", "-Q", "-C", f"{d}/primary.ctx", "-i", "-", "-u", f"{d}/seal.pub", "-r",
                      f"{d}/seal.priv"], value),
                    (["tpm2_load", "-Q", "-C", f"{d}/primary.ctx", "-u", f"{d}/seal.pub", "-r", f"{d}/seal.priv",
                      "-c", f"{d}/seal.ctx"], None),
                    (["tpm2_evictcontrol", "-Q", "-C", "o", "-c", f"{d}/seal.ctx", PERSISTENT], None)):
                run(argv, stdin=stdin, env=t)
                if argv[0] != "tpm2_load":  # the loaded object is what evictcontrol persists
                    flush()
            flush()
        except RuntimeError as e:
            unseal.na = " ".join(str(e).split())[:160]
        try:  # sealed to PCR 7, systemd's default; swtpm's PCR 7 is never extended here
            run(["systemd-creds", "encrypt", "--with-key=tpm2", "--name=bench", "-", os.path.join(tmp, "tpm.cred")],
                stdin=value, env=tpm_env)
            flush()
        except RuntimeError as e:
            creds_tpm.na = " ".join(str(e).split())[:160]
    tools += [creds_tpm, unseal]

    # gpg as `pass` uses it: a file encrypted to a key without a passphrase, decrypted by gpg
    # with its agent (started by the first decrypt, stopped at the end).
    gnupg = os.path.join(tmp, "gnupg")
    os.mkdir(gnupg, 0o700)
    genv = dict(env, GNUPGHOME=gnupg)
    gpg = Spawned("gpg --decrypt (pass)", ["gpg", "--batch", "--quiet", "--decrypt", os.path.join(tmp, "secret.gpg")],
                  genv)
    try:
        run(["gpg", "--batch", "--pinentry-mode", "loopback", "--passphrase", "", "--quick-gen-key",
             "sealkeep bench <bench@invalid>", "future-default", "default", "never"], env=genv)
        run(["gpg", "--batch", "--yes", "--compress-algo=none", "--no-encrypt-to", "--encrypt", "-r",
             "bench@invalid", "-o", os.path.join(tmp, "secret.gpg")], stdin=value, env=genv)
    except RuntimeError as e:
        gpg.na = " ".join(str(e).split())[:160]
    tools.append(gpg)

    ring = Spawned("keyctl pipe (session keyring)", ["keyctl", "pipe", str(keyring.id)] if keyring else ["false"], env)
    if not keyring:
        ring.na = "no keyring: see the in-process row"
    tools.append(ring)
    return tools, gnupg


# ---------------------------------------------------------------------------------------
# 2 and 3. Long-lived clients


class Series:
    """One tool's long-lived figures: latencies and ops/s for each client count."""

    def __init__(self, name):
        self.name = name
        self.lat, self.rate, self.na = {}, {}, None
        self.syncs = {}  # clients -> durable syncs (group commits) counted during that run


def drive(series, make_op, clients, seconds):
    """`clients` threads, each with its own connection (make_op(i) returns (op, close)),
    issue ops for `seconds`; records every op's latency and the total rate."""
    stop = threading.Event()
    start_gate = threading.Barrier(clients + 1)
    lats = [[] for _ in range(clients)]
    errors = []

    def worker(i):
        try:
            op, close = make_op(i)
        except Exception as e:  # noqa: BLE001 - reported below, with the tool's name
            errors.append(e)
            start_gate.abort()
            return
        try:
            op()  # one warm-up op per connection
            start_gate.wait()
            out, clock = lats[i], time.perf_counter
            while not stop.is_set():
                t0 = clock()
                op()
                out.append(clock() - t0)
        except Exception as e:  # noqa: BLE001
            errors.append(e)
        finally:
            close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    try:
        start_gate.wait()
    except threading.BrokenBarrierError:
        pass
    t0 = time.perf_counter()
    try:
        time.sleep(seconds)
    finally:  # an interrupt must not leave client threads running past the servers' stop
        stop.set()
        for t in threads:
            t.join()
    elapsed = time.perf_counter() - t0
    if errors:
        raise RuntimeError(f"{series.name}: {errors[0]!r}")
    all_lat = [x for lst in lats for x in lst]
    series.lat[clients] = all_lat
    series.rate[clients] = len(all_lat) / elapsed


def sealkeep_get(agent, value):
    def make(_):
        c = Http(agent.socket)
        target = f"/v1/secrets/{PATH}"

        def op():
            status, body = c.request("GET", target)
            if status != 200:
                raise RuntimeError(f"GET {status}")
            return body

        status, body = c.request("GET", target)
        if status != 200 or json_value(body) != value:
            raise RuntimeError("sealkeepd returned a different value")
        return op, c.close

    return make


def sealkeep_put(agent, value):
    body = json.dumps({"value_b64": b64(value)}).encode()

    def make(i):
        c = Http(agent.socket)
        target = f"/v1/secrets/bench/w{i}"

        def op():
            status, _ = c.request("PUT", target, body)
            if status != 200:
                raise RuntimeError(f"PUT {status}")

        return op, c.close

    return make


def pg_select(pg, value):
    def make(_):
        conn = pg.connect()
        cur = conn.cursor()

        def op():
            cur.execute("SELECT v FROM secrets WHERE k = %s", (PATH,))
            return cur.fetchone()

        if bytes(op()[0]) != value:
            raise RuntimeError("PostgreSQL returned a different value")
        return op, conn.close

    return make


def pg_upsert(pg, value):
    def make(i):
        conn = pg.connect()
        cur = conn.cursor()
        key, v = f"bench/w{i}", pg.psycopg2.Binary(value)

        def op():
            cur.execute("INSERT INTO secrets (k, v) VALUES (%s, %s) ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v",
                        (key, v))

        return op, conn.close

    return make


def sealkeep_batches(agent):
    def count():
        c = Http(agent.socket)
        _, body = c.request("GET", "/metrics")
        c.close()
        for line in body.decode().splitlines():
            if line.startswith("sealkeep_commit_batches_total "):
                return int(float(line.split()[1]))
        raise RuntimeError("no sealkeep_commit_batches_total in /metrics")

    return count


def pg_wal_syncs(pg):
    def count():
        time.sleep(1.2)  # backends and the WAL writer report their statistics at most once a second
        conn = pg.connect()
        cur = conn.cursor()
        cur.execute("SELECT wal_sync FROM pg_stat_wal")
        n = cur.fetchone()[0]
        conn.close()
        return n

    return count


def syncs_per_put(agent, value, puts=200):
    """The sync system calls one single-client durable PUT makes: `strace -c -f` attached to
    sealkeepd while `puts` PUTs run one after another (after the timed runs, so strace's cost
    touches no figure). Returns (calls per PUT by name, the note's text), or None without strace."""
    if not shutil.which("strace"):
        return None
    out = os.path.join(agent.dir, "strace-syncs.txt")
    tracer = subprocess.Popen(["strace", "-f", "-c", "-e", "trace=fsync,fdatasync,sync_file_range,syncfs",
                               "-o", out, "-p", str(agent.proc.pid)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        c = Http(agent.socket)
        # strace attaches to the agent's threads one by one: give it a moment before counting
        body = json.dumps({"value_b64": b64(value)}).encode()
        time.sleep(0.5)
        for _ in range(puts):
            status, _ = c.request("PUT", "/v1/secrets/bench/syncs", body)
            if status != 200:
                raise RuntimeError(f"PUT {status}")
        c.close()
    finally:
        tracer.send_signal(signal.SIGINT)
        tracer.wait(timeout=30)
    calls = {}
    for line in open(out):
        f = line.split()
        if len(f) >= 5 and f[-1] in ("fsync", "fdatasync", "sync_file_range", "syncfs") and f[3].isdigit():
            calls[f[-1]] = int(f[3]) / puts
    total = sum(calls.values())
    detail = ", ".join(f"{n} {c:.2f}" for n, c in sorted(calls.items())) or "none"
    return calls, (f"Syncs per single-client PUT (`strace -f -c` on sealkeepd over {puts} PUTs, after the "
                   f"timed runs, the housekeeping's once-a-second syncs included): {total:.2f} ({detail})")


def keyring_read(keyring, value):
    def make(_):
        read = keyring.reader()
        if read() != value:
            raise RuntimeError("the keyring returned a different value")
        return read, lambda: None

    return make


def fsync_floor(tmp, dsync=True, count=400, size=4096):
    """`count` 4 KiB overwrites of a file written and synced first, so that no write
    allocates: the least a durable write can cost on this disk. dsync: each pwrite with
    O_DSYNC (the floor the issue names); otherwise pwrite then fdatasync (what SQLite and
    PostgreSQL call)."""
    path = os.path.join(tmp, "fsync-floor")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, b"\0" * size * count)
    os.fsync(fd)
    os.close(fd)
    fd = os.open(path, os.O_WRONLY | (os.O_DSYNC if dsync else 0))
    block = os.urandom(size)
    lat = []
    t_start = time.perf_counter()
    for i in range(count):
        t0 = time.perf_counter()
        os.pwrite(fd, block, i * size)
        if not dsync:
            os.fdatasync(fd)
        lat.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - t_start
    os.close(fd)
    os.unlink(path)
    s = Series("fsync floor (4 KiB O_DSYNC pwrite)" if dsync else "4 KiB pwrite + fdatasync")
    s.lat[1], s.rate[1] = lat, count / elapsed
    return s


def measure_series(series, make, clients, seconds, syncs=None):
    """syncs: a function returning the server's count of durable syncs so far, read around
    each run (so that commits per sync can be reported)."""
    if series.na:
        return
    for n in clients:
        try:
            before = syncs() if syncs else None
            drive(series, make, n, seconds)
            if syncs:
                series.syncs[n] = syncs() - before
        except Exception as e:  # noqa: BLE001 - the table says what failed
            series.na = f"failed with {n} clients: {' '.join(str(e).split())[:160]}"
            log(series.na)
            return


# ---------------------------------------------------------------------------------------
# The machine, the table, the plots


def sh(argv):
    with contextlib.suppress(OSError):
        p = subprocess.run(argv, capture_output=True, text=True)
        if p.returncode == 0:
            return p.stdout.strip()
    return "?"


def machine(tmp):
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    source = sh(["findmnt", "-n", "-o", "SOURCE", "-T", tmp])
    disk = "?"
    if source.startswith("/dev/"):
        parent = (sh(["lsblk", "-n", "-o", "PKNAME", source]).splitlines() or [""])[0].strip()  # a partition's disk
        device = f"/dev/{parent}" if parent and parent != "?" else source
        disk = sh(["lsblk", "-n", "-d", "-o", "NAME,TYPE,ROTA,SIZE,MODEL", device])
    return [
        ("CPU", f"{cpu}, {os.cpu_count()} cores (`nproc`)"),
        ("Kernel", platform.release()),
        ("Debian", open("/etc/debian_version").read().strip()),
        ("Temp folder's file system (`findmnt -T`)", sh(["findmnt", "-n", "-o", "SOURCE,FSTYPE,OPTIONS", "-T", tmp])),
        ("Its disk (`lsblk`: name, type, rotational, size, model)", " ".join(disk.split())),
        ("Load average at start", open("/proc/loadavg").read().split(" ", 3)[:3]),
        ("sealkeep", sh(["git", "-C", REPO, "describe", "--always", "--dirty"])),
        ("Versions", "; ".join(x for x in [
            sh([f"{PG_BIN}/postgres", "--version"]),
            sh(["gpg", "--version"]).splitlines()[0],
            sh(["systemd-creds", "--version"]).splitlines()[0],
            sh(["swtpm", "--version"]).splitlines()[0],
            "tpm2-tools " + sh(["tpm2_unseal", "--version"]).split("version=")[-1].split()[0].strip('"'),
            sh(["keyctl", "--version"]).splitlines()[0],
            "Python " + platform.python_version(),
        ])),
    ]


class Row:
    def __init__(self, section, tool, clients, lat=None, rate=float("nan"), cpu=None, na=None, base=None):
        self.section, self.tool, self.clients = section, tool, clients
        self.p50 = statistics.median(lat) if lat else float("nan")
        self.p99 = pct(lat, 0.99) if lat else float("nan")
        self.rate, self.na, self.base = rate, na, base
        self.cpu = statistics.median(cpu) if cpu else None

    def cells(self):
        if self.na:
            return [self.tool, str(self.clients), f"n/a: {self.na}", "", "", "", ""]
        ratio = "1.00 (reference)" if self.base is self else (
            f"{self.p50 / self.base.p50:.2f}" if self.base and self.base.p50 == self.base.p50 else "-")
        cpu = fmt_time(self.cpu) if self.cpu is not None else ""
        return [self.tool, str(self.clients), fmt_time(self.p50), fmt_time(self.p99), fmt_rate(self.rate), ratio, cpu]


HEADER = ["tool", "clients", "p50", "p99", "ops/s", "p50 ÷ sealkeep", "CPU/call"]


def print_table(rows):
    cells = [HEADER] + [r.cells() for r in rows]
    # An n/a row's reason runs on past the columns instead of widening them.
    widths = [max(len(c[i]) for c, r in zip(cells, [None] + rows) if not (r and r.na and i >= 2))
              for i in range(len(HEADER))]
    section = None
    for r, c in zip([None] + rows, cells):
        if r and r.section != section:
            section = r.section
            print(f"\n{section}")
        if r and r.na:
            c = [c[0].ljust(widths[0]), c[1].ljust(widths[1]), c[2]]
        print("  ".join(x.ljust(w) for x, w in zip(c, widths)).rstrip())


def markdown_table(rows):
    out = []
    section = None
    for r in rows:
        if r.section != section:
            section = r.section
            out += ["", f"**{section}**", "", "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
        out.append("| " + " | ".join(c.replace("|", "\\|") for c in r.cells()) + " |")
    return out


def plot(spawned, series, writes, floors, clients, cdf_png, tput_png):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(14, 6))
    curves = [(t.name, t.wall, "-") for t in spawned if not t.na and t.wall]
    curves += [(f"{s.name} (1 client)", s.lat.get(1), "--") for s in series + writes if not s.na and s.lat.get(1)]
    curves += [(f.name, f.lat[1], ":") for f in floors]
    for name, lat, style in curves:
        v = sorted(lat)
        ax.plot([x * 1e6 for x in v], [(i + 1) / len(v) for i in range(len(v))], style, label=name, linewidth=1.4)
    ax.set_xscale("log")
    ax.set_xlabel("latency per read or write (µs, log scale)")
    ax.set_ylabel("fraction of operations at or below")
    ax.set_title("Latency CDF: a process per read (solid), a long-lived client (dashed), fsync floor (dotted)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(cdf_png, dpi=110)
    plt.close(fig)

    fig, (reads_ax, writes_ax) = plt.subplots(1, 2, figsize=(12, 5))
    for ax, group, title in ((reads_ax, series, "Reads"), (writes_ax, writes, "Durable writes")):
        for s in group:
            if s.na or not s.rate:
                continue
            xs = [n for n in clients if n in s.rate]
            ax.plot(xs, [s.rate[n] for n in xs], "o-", label=s.name)
        if group is writes:
            ax.axhline(floors[0].rate[1], linestyle=":", color="grey", label=f"{floors[0].name}, 1 writer")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(clients)
        ax.set_xticklabels([str(n) for n in clients])
        ax.set_xlabel("client threads (each its own connection)")
        ax.set_ylabel("operations/s")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(tput_png, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=os.path.join(REPO, "build"), help="build folder (default: the repo's build/)")
    ap.add_argument("--out", default=os.path.join(REPO, "docs", "bench"), help="where the .md and .png go")
    ap.add_argument("--runs", type=int, default=200, help="spawns per tool (default 200)")
    ap.add_argument("--seconds", type=float, default=2.0, help="seconds per long-lived measurement (default 2)")
    ap.add_argument("--clients", default="1,2,4,8,16", help="client counts (default 1,2,4,8,16)")
    ap.add_argument("--tmp", default=None, help="parent of the temp folder (default: $TMPDIR or /tmp)")
    args = ap.parse_args()
    args.build = os.path.abspath(args.build)
    clients = sorted({int(x) for x in args.clients.split(",")} | {1, 16})
    for binary in ("agent/sealkeepd", "tools/sealkeep"):
        if not os.access(os.path.join(args.build, binary), os.X_OK):
            sys.exit(f"peers: no {binary} under {args.build} (build first, or pass --build DIR)")
    if os.geteuid() != 0:
        sys.exit("peers: run as root (PostgreSQL is started as `nobody` through runuser)")

    # SIGTERM and SIGHUP unwind like Ctrl-C, so that every `finally` below stops what it started.
    def interrupted(signum, _frame):
        raise KeyboardInterrupt(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGHUP, interrupted)

    today = datetime.date.today().isoformat()
    os.makedirs(args.out, exist_ok=True)
    md_path = os.path.join(args.out, f"peers-{today}.md")
    cdf_png = os.path.join(args.out, f"peers-{today}-cdf.png")
    tput_png = os.path.join(args.out, f"peers-{today}-throughput.png")
    value = os.urandom(32)
    started = time.monotonic()

    with contextlib.ExitStack() as stack:
        tmp = tempfile.mkdtemp(prefix="sk-peers-", dir=args.tmp)
        stack.callback(shutil.rmtree, tmp, True)
        os.chmod(tmp, 0o711)  # `nobody` (PostgreSQL) must reach tmp/pg; nothing here is listable
        about = machine(tmp)
        log(f"temp folder {tmp}")

        os.mkdir(os.path.join(tmp, "agent"), 0o700)
        agent = Sealkeepd(args.build, os.path.join(tmp, "agent"), True, stack)
        agent.put(PATH, value)
        try:
            keyring = Keyring(value)
            stack.callback(keyring.remove)
            keyring_na = None
        except Unavailable as e:
            keyring, keyring_na = None, str(e)
        try:
            tpm = Swtpm(tmp, stack)
        except (RuntimeError, OSError) as e:
            log(f"swtpm: {e}")
            tpm = None
        spawned, gnupg = set_up_spawned(args, tmp, value, agent, keyring, tpm)
        stack.callback(run, ["gpgconf", "--kill", "all"], env=dict(os.environ, GNUPGHOME=gnupg), check=False)

        log(f"1/3 a process per read: {args.runs} runs of {len(spawned)} tools, round-robin")
        measure_spawns(spawned, value, args.runs, 5, tmp)

        log(f"2/3 long-lived readers: {args.seconds:g} s for each of {clients} clients")
        get_cached = Series("sealkeep GET, data key cached")
        get_cold = Series("sealkeep GET, cold (dek_entries = 0)")
        ring = Series("keyring read, in-process (keyctl)")
        select = Series("PostgreSQL SELECT by primary key")
        upsert = Series("PostgreSQL upsert, synchronous_commit=on")
        put = Series("sealkeep PUT (durable)")
        ring.na = keyring_na
        pg = None
        try:
            pg = Postgres(tmp, stack)
            conn = pg.connect()
            cur = conn.cursor()
            cur.execute("CREATE TABLE secrets (k text PRIMARY KEY, v bytea NOT NULL)")
            cur.execute("INSERT INTO secrets VALUES (%s, %s)", (PATH, pg.psycopg2.Binary(value)))
            cur.execute("SHOW synchronous_commit")
            assert cur.fetchone()[0] == "on"
            conn.close()
        except (Unavailable, RuntimeError, ImportError, OSError) as e:
            select.na = upsert.na = " ".join(str(e).split())[:160]
            log(f"PostgreSQL: {select.na}")

        measure_series(get_cached, sealkeep_get(agent, value), clients, args.seconds)
        if keyring:
            measure_series(ring, keyring_read(keyring, value), clients, args.seconds)
        if pg:
            measure_series(select, pg_select(pg, value), clients, args.seconds)
        with contextlib.ExitStack() as cold_stack:
            os.mkdir(os.path.join(tmp, "agent-cold"), 0o700)
            cold = Sealkeepd(args.build, os.path.join(tmp, "agent-cold"), False, cold_stack)
            cold.put(PATH, value)
            measure_series(get_cold, sealkeep_get(cold, value), clients, args.seconds)

        log("3/3 durable writes")
        floor = fsync_floor(tmp)
        floor_fdatasync = fsync_floor(tmp, dsync=False)
        measure_series(put, sealkeep_put(agent, value), clients, args.seconds, sealkeep_batches(agent))
        put_syncs = syncs_per_put(agent, value)
        if pg:
            measure_series(upsert, pg_upsert(pg, value), clients, args.seconds, pg_wal_syncs(pg))
        load_end = open("/proc/loadavg").read().split(" ", 3)[:3]

    # Every process is stopped and the temp folder gone; what is left is arithmetic.
    rows = []
    s1 = "1. A process per read (spawn to exit; CPU/call is the child's user+sys)"
    base = None
    for t in spawned:
        rate = len(t.wall) / sum(t.wall) if t.wall else float("nan")
        row = Row(s1, t.name, 1, t.wall, rate, t.cpu, t.na)
        base = base or (row if t.name == "sealkeep get" and not t.na else None)
        row.base = base
        rows.append(row)
    s2 = "2. A long-lived client (p50/p99 over every op of every client)"
    s3 = "3. Durable writes"
    for section, group, ref in ((s2, [get_cached, get_cold, ring, select], get_cached), (s3, [put, upsert], put)):
        for n in (1, 16):
            refrow = None
            for s in group:
                row = Row(section, s.name, n, s.lat.get(n), s.rate.get(n, float("nan")), na=s.na)
                if s is ref:
                    refrow = row
                row.base = refrow
                rows.append(row)
            if section == s3 and n == 1:
                for f in (floor, floor_fdatasync):
                    rows.append(Row(s3, f.name, 1, f.lat[1], f.rate[1], base=refrow))
    print_table(rows)
    shared = [f"{s.name}: {len(s.lat[n]) / s.syncs[n]:.1f}" for s in (put, upsert)
              for n in (16,) if not s.na and s.syncs.get(n)]
    shared_note = ("Writes per durable sync at 16 clients (sealkeep: `sealkeep_commit_batches_total`, each "
                   "batch one SQLite commit with its syncs; PostgreSQL: `pg_stat_wal.wal_sync`): "
                   + "; ".join(shared)) if shared else ""
    if put_syncs:
        shared_note = (shared_note + ".\n\n" if shared_note else "") + put_syncs[1]
    if shared_note:
        print(f"\n{shared_note}")
    plot(spawned, [get_cached, get_cold, ring, select], [put, upsert], [floor, floor_fdatasync], clients, cdf_png,
         tput_png)

    about.append(("Load average at end", load_end))
    elapsed = time.monotonic() - started
    md = [f"# sealkeep against its peers, {today}", "",
          "Written by `tools/dev bench peers` (`tools/bench/peers.py`); every figure is from one run on the "
          "machine below. Medians; nothing is asserted. The value is 32 random bytes, the same for every tool. "
          "Ratios compare a row's p50 with sealkeep's figure in the same section and client count "
          "(`sealkeep get`, the cached GET, the PUT). Client threads share one Python interpreter, so at "
          "16 clients the harness is part of every figure alike: compare ratios, not absolute rates.", ""]
    md += [f"- **{k}**: {' '.join(v) if isinstance(v, list) else v}" for k, v in about]
    md += [f"- **Run**: {args.runs} spawns per tool after 5 warm-up rounds; {args.seconds:g} s per long-lived "
           f"measurement at {', '.join(map(str, clients))} clients; {elapsed:.0f} s in all"]
    md += markdown_table(rows)
    if shared_note:
        md += ["", shared_note + "."]
    md += ["", "How each was set up:", "",
           "- sealkeepd: a fresh SoftHSM2 token, epoch anchors, SQLite `synchronous=FULL`, a policy file "
           "(root is admin) and the audit log on, as `tools/dev run` writes them. Cold reads come from a second "
           "agent with `[cache] dek_entries = 0` (every read unwraps its data key in SoftHSM2), as "
           "`sk_bench_api` defines cold.",
           "- `sealkeep get` and curl ask the same agent; curl asks for `?encoding=base64` and the harness "
           "decodes the JSON.",
           "- systemd-creds: `--with-key=host` with `$SYSTEMD_CREDENTIAL_SECRET` pointing at a host secret in the "
           "temp folder (the host's own is never created or read); `--with-key=tpm2` on the swtpm through "
           "`$SYSTEMD_TPM2_DEVICE=swtpm:...`, sealed to PCR 7 (systemd's default).",
           "- tpm2_unseal: a sealed data object under an ECC primary, made persistent at "
           f"{PERSISTENT} (no auth value, no PCR policy), read through the swtpm TCTI with no resource manager.",
           "- gpg: a `future-default` (Curve25519) key without a passphrase in a temp GNUPGHOME; "
           "`gpg --batch --quiet --decrypt` through its gpg-agent, as `pass show` does.",
           "- keyring: a `user` key in a fresh session keyring; `keyctl pipe` per process, and one "
           "`keyctl(KEYCTL_READ)` syscall per read in-process.",
           "- PostgreSQL 15: initdb'd in the temp folder, run as `nobody`, Unix socket only, `fsync=on`, "
           "`synchronous_commit=on`; psycopg2 in autocommit, one connection per client thread.",
           "- fsync floor: 400 4 KiB `O_DSYNC` `pwrite`s over a file in the temp folder, written and synced "
           "first; then 400 `pwrite` + `fdatasync` pairs, the call SQLite and PostgreSQL make.",
           "- Writes per durable sync: sealkeepd's `sealkeep_commit_batches_total` and PostgreSQL's "
           "`pg_stat_wal.wal_sync`, read before and after each run (warm-up writes included).", "",
           f"![latency CDF]({os.path.basename(cdf_png)})", "", f"![throughput]({os.path.basename(tput_png)})", ""]
    write(md_path, "\n".join(md), 0o644)
    log(f"wrote {md_path}, {cdf_png}, {tput_png} ({elapsed:.0f} s)")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt as e:
        sys.exit(f"peers: interrupted ({e}); everything started was stopped")
