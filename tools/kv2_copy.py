#!/usr/bin/python3
"""Copy a KV v2 mount, every secret with its history, from Vault into sealkeep (docs/vault-compat.md).

  kv2_copy.py export --addr URL [--token-file FILE] [--mount secret] [--prefix P]   > stream
  kv2_copy.py import --socket SOCKET [--mount secret]                                < stream

Both ends speak Vault's KV v2 API through hvac, unchanged. `export` reads from any KV v2
server (Vault: --addr https://vault:8200 --token-file F; a Unix socket: --addr unix:/path)
and writes one JSON line per version, oldest first, path by path:
  {"path": P, "version": N, "state": "live"|"deleted"|"destroyed", "data": {...}}
(`data` only for live versions: Vault does not give the data of deleted or destroyed ones).
`import` writes each path's versions into sealkeep in order, with check-and-set, so the
version numbers stay Vault's; a version without data becomes a placeholder that is then
deleted or destroyed as it was in Vault. A path that already exists in sealkeep is left
alone and reported (exit 1). Pipe one into the other so the secrets never rest in a file.

Nothing secret is printed: progress goes to stderr as paths and version counts.
"""
import argparse
import datetime
import json
import re
import sys
import urllib.parse

try:
    import hvac
    import hvac.exceptions as hexc
    import requests_unixsocket
except ImportError as e:
    print("kv2_copy: needs hvac (%s): apt-get install python3-hvac python3-requests-unixsocket" % e,
          file=sys.stderr)
    sys.exit(2)

PLACEHOLDER = {"sealkeep.migrated": "a version Vault kept no data of"}


def client(addr, token=None):
    if addr.startswith("unix:"):
        sock = addr[len("unix:"):]
        return hvac.Client(url="http+unix://" + urllib.parse.quote(sock, safe=""), token=token,
                           session=requests_unixsocket.Session(), timeout=30)
    return hvac.Client(url=addr, token=token, timeout=30)


def in_the_past(rfc3339):
    """Vault's deletion_time: "" (none), or a time that may still be ahead (delete_version_after)."""
    if not rfc3339:
        return False
    t = re.sub(r"(\.\d{6})\d*", r"\1", rfc3339.replace("Z", "+00:00"))
    return datetime.datetime.fromisoformat(t) <= datetime.datetime.now(datetime.timezone.utc)


def paths_under(kv, mount, prefix):
    """Every secret path under prefix, depth first, in the order Vault lists them."""
    try:
        keys = kv.list_secrets(path=prefix, mount_point=mount)["data"]["keys"]
    except hexc.InvalidPath:
        return
    for key in keys:
        full = (prefix.rstrip("/") + "/" + key).lstrip("/") if prefix else key
        if key.endswith("/"):
            yield from paths_under(kv, mount, full)
        else:
            yield full


def export(args):
    token = None
    if args.token_file:
        with open(args.token_file) as f:
            token = f.read().strip()
    kv = client(args.addr, token).secrets.kv.v2
    count = 0
    for path in paths_under(kv, args.mount, args.prefix):
        meta = kv.read_secret_metadata(path=path, mount_point=args.mount)["data"]
        for number in sorted(meta["versions"], key=int):
            v = meta["versions"][number]
            state = "destroyed" if v["destroyed"] else "deleted" if in_the_past(v["deletion_time"]) else "live"
            line = {"path": path, "version": int(number), "state": state}
            if state == "live":
                try:
                    line["data"] = kv.read_secret_version(path=path, version=int(number),
                                                          mount_point=args.mount)["data"]["data"]
                except hexc.InvalidPath:  # deleted since the metadata was read
                    line["state"] = "deleted"
            sys.stdout.write(json.dumps(line, separators=(",", ":")) + "\n")
            count += 1
        print("exported %s: %d versions" % (path, len(meta["versions"])), file=sys.stderr)
    sys.stdout.flush()
    print("exported %d versions" % count, file=sys.stderr)


def import_path(kv, mount, path, versions):
    """Writes one path's versions; False when the path is already there."""
    try:
        kv.read_secret_metadata(path=path, mount_point=mount)
        print("skipped %s: it exists in sealkeep already" % path, file=sys.stderr)
        return False
    except hexc.InvalidPath:
        pass
    by_number = {v["version"]: v for v in versions}
    deleted, destroyed = [], []
    for n in range(1, max(by_number) + 1):
        v = by_number.get(n, {"state": "destroyed"})  # numbers Vault pruned: placeholders, destroyed
        data = v.get("data", PLACEHOLDER) if v["state"] == "live" else PLACEHOLDER
        written = kv.create_or_update_secret(path=path, secret=data, cas=n - 1, mount_point=mount)
        if written["data"]["version"] != n:
            raise SystemExit("kv2_copy: %s: wrote version %d, expected %d" % (path, written["data"]["version"], n))
        (deleted if v["state"] == "deleted" else destroyed if v["state"] == "destroyed" else []).append(n)
    if deleted:
        kv.delete_secret_versions(path=path, versions=deleted, mount_point=mount)
    if destroyed:
        kv.destroy_secret_versions(path=path, versions=destroyed, mount_point=mount)
    print("copied %s: %d versions (%d deleted, %d destroyed)" % (path, max(by_number), len(deleted), len(destroyed)),
          file=sys.stderr)
    return True


def import_(args):
    kv = client("unix:" + args.socket).secrets.kv.v2
    current, versions, skipped = None, [], 0
    for raw in sys.stdin:
        if not raw.strip():
            continue
        line = json.loads(raw)
        if line["path"] != current and versions:
            skipped += not import_path(kv, args.mount, current, versions)
            versions = []
        current = line["path"]
        versions.append(line)
    if versions:
        skipped += not import_path(kv, args.mount, current, versions)
    if skipped:
        print("kv2_copy: %d paths were already in sealkeep and were not copied" % skipped, file=sys.stderr)
        sys.exit(1)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    e = sub.add_parser("export", help="read a KV v2 mount (Vault), write the stream to stdout")
    e.add_argument("--addr", required=True, help="https://vault:8200, or unix:/path/to.sock")
    e.add_argument("--token-file", help="a file holding the Vault token (never on the command line)")
    e.add_argument("--mount", default="secret")
    e.add_argument("--prefix", default="")
    i = sub.add_parser("import", help="write the stream from stdin into sealkeep")
    i.add_argument("--socket", required=True, help="sealkeepd's API socket")
    i.add_argument("--mount", default="secret", help="sealkeepd's kv_mount")
    args = p.parse_args()
    export(args) if args.command == "export" else import_(args)


if __name__ == "__main__":
    main()
