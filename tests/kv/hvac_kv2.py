#!/usr/bin/python3
"""hvac, unchanged, against sealkeepd's KV v2 facade (tests/kv/kv_clients_test.cc runs it).

Usage: hvac_kv2.py SOCKET MODE PREFIX
  MODE full       every secrets.kv.v2 method the facade serves, on paths under PREFIX
  MODE forbidden  as a caller whose policy grants read, list and write on team/** only

Each step prints "ok <step>"; the first failed check prints "FAIL <step>: <why>" on stderr
and exits 1. Exit 3: hvac or requests-unixsocket is missing. The secrets are made here
(never on the command line); what is printed never holds one.
"""
import secrets
import sys
import urllib.parse

try:
    import hvac
    import hvac.exceptions as hexc
    import requests_unixsocket
except ImportError as e:  # the test fails with this, never skips
    print("hvac is not installed (%s): run tools/dev test-deps, or apt-get install python3-hvac "
          "python3-requests-unixsocket, and use /usr/bin/python3" % e, file=sys.stderr)
    sys.exit(3)

STEP = ["start"]


def step(name):
    STEP[0] = name


def check(cond, why):
    if not cond:
        print("FAIL %s: %s" % (STEP[0], why), file=sys.stderr)
        sys.exit(1)


def ok():
    print("ok " + STEP[0], flush=True)


def expect_error(kind, fn, status, first=None):
    """fn() must raise hvac's `kind` for HTTP `status`, with errors[0] == first (when given)."""
    try:
        fn()
    except kind as e:
        errors = e.errors
        if first is None:
            return errors
        check(isinstance(errors, list) and errors and errors[0] == first,
              "expected errors[0] %r for %d, got %r" % (first, status, errors))
        return errors
    except hexc.VaultError as e:
        check(False, "expected %s (%d), got %s: %s" % (kind.__name__, status, type(e).__name__, e))
    check(False, "expected %s (%d), but the call succeeded" % (kind.__name__, status))


def client(sock):
    # How hvac reaches a Unix socket: requests-unixsocket's session and an http+unix URL.
    # The token is sent as X-Vault-Token, and sealkeepd ignores it (the kernel says who calls).
    return hvac.Client(url="http+unix://" + urllib.parse.quote(sock, safe=""),
                       token="s.ignored-by-sealkeep", session=requests_unixsocket.Session(), timeout=30)


def full(c, prefix):
    kv = c.secrets.kv.v2
    p = prefix + "/app/db"
    first = {"user": "app", "password": secrets.token_urlsafe(16), "port": 5432, "tls": True,
             "nested": {"list": [1, "two", None], "unicode": "caf\u00e9 \u2603"}}
    second = dict(first, password=secrets.token_urlsafe(16))

    step("create_or_update_secret")
    r = kv.create_or_update_secret(path=p, secret=first)
    check(r["data"]["version"] == 1, "first write is version 1: %r" % r["data"])
    check(r["data"]["destroyed"] is False and r["data"]["deletion_time"] == "", "fresh version: %r" % r["data"])
    check(r["data"]["created_time"].endswith("Z"), "RFC 3339 time: %r" % r["data"]["created_time"])
    for key in ("request_id", "lease_id", "renewable", "lease_duration", "wrap_info", "warnings", "auth"):
        check(key in r, "the envelope has %s: %r" % (key, sorted(r)))
    ok()

    step("create_or_update_secret_with_cas")
    r = kv.create_or_update_secret(path=p, secret=second, cas=1)
    check(r["data"]["version"] == 2, "cas=1 on version 1 writes version 2: %r" % r["data"])
    ok()

    step("cas_conflict")
    errors = expect_error(hexc.InvalidRequest, lambda: kv.create_or_update_secret(path=p, secret=first, cas=1),
                          400, "check-and-set parameter did not match the current version")
    check(any("cas_mismatch" in e for e in errors), "sealkeep's reason follows: %r" % errors)
    expect_error(hexc.InvalidRequest, lambda: kv.create_or_update_secret(path=p, secret=first, cas=0),
                 400, "check-and-set parameter did not match the current version")
    r = kv.create_or_update_secret(path=prefix + "/create-only", secret={"a": "b"}, cas=0)
    check(r["data"]["version"] == 1, "cas=0 creates a missing path: %r" % r["data"])
    ok()

    step("read_secret_version_latest")
    r = kv.read_secret_version(path=p)
    check(r["data"]["data"] == second, "latest data as written")
    check(r["data"]["metadata"]["version"] == 2, "latest is 2: %r" % r["data"]["metadata"])
    check(r["data"]["metadata"]["custom_metadata"].get("sealkeep.format") == "kv2-json",
          "labelled: %r" % r["data"]["metadata"]["custom_metadata"])
    ok()

    step("read_secret_version_by_version")
    r = kv.read_secret_version(path=p, version=1)
    check(r["data"]["data"] == first, "version 1 data as written")
    check(r["data"]["metadata"]["version"] == 1, "version 1: %r" % r["data"]["metadata"])
    expect_error(hexc.InvalidPath, lambda: kv.read_secret_version(path=p, version=9), 404)
    expect_error(hexc.InvalidPath, lambda: kv.read_secret_version(path=prefix + "/nothing"), 404)
    ok()

    step("list_secrets")
    kv.create_or_update_secret(path=prefix + "/app/api/key", secret={"k": secrets.token_hex(8)})
    r = kv.list_secrets(path=prefix)
    check(r["data"]["keys"] == ["app/", "create-only"], "folders end in /: %r" % r["data"]["keys"])
    r = kv.list_secrets(path=prefix + "/app")
    check(r["data"]["keys"] == ["api/", "db"], "one level: %r" % r["data"]["keys"])
    expect_error(hexc.InvalidPath, lambda: kv.list_secrets(path=prefix + "/none"), 404)
    ok()

    step("read_secret_metadata")
    r = kv.read_secret_metadata(path=p)
    d = r["data"]
    check(d["current_version"] == 2, "current 2: %r" % d)
    check(sorted(d["versions"]) == ["1", "2"], "two versions: %r" % d["versions"])
    check(all(v["destroyed"] is False and v["deletion_time"] == "" for v in d["versions"].values()),
          "both live: %r" % d["versions"])
    check(d["created_time"] == d["versions"]["1"]["created_time"], "created with version 1")
    ok()

    step("update_metadata")
    r = kv.update_metadata(path=p)  # hvac sends delete_version_after "0s": what sealkeep does
    check(r.status_code == 204, "settings sealkeep has are confirmed: %r" % r.status_code)
    expect_error(hexc.InvalidRequest, lambda: kv.update_metadata(path=p, max_versions=5), 400)
    check(kv.read_secret_metadata(path=p)["data"]["current_version"] == 2, "no version written")
    ok()

    step("delete_latest_version_of_secret")
    r = kv.delete_latest_version_of_secret(path=p)
    check(r.status_code == 204, "204: %r" % r.status_code)
    expect_error(hexc.InvalidPath, lambda: kv.read_secret_version(path=p), 404)
    check(kv.read_secret_version(path=p, version=1)["data"]["data"] == first, "version 1 still reads")
    check(kv.read_secret_metadata(path=p)["data"]["versions"]["2"]["deletion_time"] != "", "2 is deleted")
    ok()

    step("undelete_secret_versions")
    r = kv.undelete_secret_versions(path=p, versions=[2])
    check(r.status_code == 204, "204: %r" % r.status_code)
    check(kv.read_secret_version(path=p)["data"]["data"] == second, "version 2 reads again")
    ok()

    step("delete_secret_versions")
    r = kv.delete_secret_versions(path=p, versions=[1, 7])  # 7 never was: passed over, as Vault does
    check(r.status_code == 204, "204: %r" % r.status_code)
    expect_error(hexc.InvalidPath, lambda: kv.read_secret_version(path=p, version=1), 404)
    check(kv.read_secret_version(path=p)["data"]["metadata"]["version"] == 2, "2 untouched")
    kv.undelete_secret_versions(path=p, versions=[1])
    check(kv.read_secret_version(path=p, version=1)["data"]["data"] == first, "1 undeleted")
    ok()

    step("destroy_secret_versions")
    r = kv.destroy_secret_versions(path=p, versions=[1])
    check(r.status_code == 204, "204: %r" % r.status_code)
    expect_error(hexc.InvalidPath, lambda: kv.read_secret_version(path=p, version=1), 404)
    versions = kv.read_secret_metadata(path=p)["data"]["versions"]
    check(versions["1"]["destroyed"] is True and versions["2"]["destroyed"] is False, "1 destroyed: %r" % versions)
    r = kv.undelete_secret_versions(path=p, versions=[1])  # a destroyed version stays destroyed
    check(r.status_code == 204, "undeleting a destroyed version is passed over: %r" % r.status_code)
    ok()

    step("delete_metadata_and_all_versions")
    r = kv.delete_metadata_and_all_versions(path=p)
    check(r.status_code == 204, "204: %r" % r.status_code)
    expect_error(hexc.InvalidPath, lambda: kv.read_secret_metadata(path=p), 404)
    expect_error(hexc.InvalidPath, lambda: kv.read_secret_version(path=p), 404)
    check(kv.list_secrets(path=prefix + "/app")["data"]["keys"] == ["api/"], "db is gone from the listing")
    r = kv.create_or_update_secret(path=p, secret={"again": "yes"}, cas=0)
    check(r["data"]["version"] == 3, "a new life continues the numbering: %r" % r["data"])
    ok()

    step("configuration_and_mounts")
    r = kv.read_configuration()
    check(r["data"]["cas_required"] is False, "config: %r" % r["data"])
    m = c.sys.list_mounted_secrets_engines()
    check(m["data"]["secret/"]["options"]["version"] == "2", "a KV v2 mount: %r" % m["data"])
    check(c.sys.read_health_status(method="GET")["sealed"] is False, "unsealed")
    ok()


def forbidden(c):
    kv = c.secrets.kv.v2
    step("allowed_path")
    r = kv.create_or_update_secret(path="team/mine", secret={"v": secrets.token_hex(8)})
    check(r["data"]["version"] >= 1, "write on team/**: %r" % r["data"])
    check("v" in kv.read_secret_version(path="team/mine")["data"]["data"], "read on team/**")
    ok()

    step("forbidden_read")
    there = expect_error(hexc.Forbidden, lambda: kv.read_secret_version(path="private/db"), 403, "permission denied")
    missing = expect_error(hexc.Forbidden, lambda: kv.read_secret_version(path="private/nothing"), 403,
                           "permission denied")
    check([e.replace("private/nothing", "private/db") for e in missing] == there,
          "a forbidden path and a missing one look alike: %r %r" % (there, missing))
    ok()

    step("forbidden_write")
    expect_error(hexc.Forbidden, lambda: kv.create_or_update_secret(path="private/db", secret={"x": "y"}), 403,
                 "permission denied")
    expect_error(hexc.Forbidden, lambda: kv.destroy_secret_versions(path="private/db", versions=[1]), 403,
                 "permission denied")
    expect_error(hexc.Forbidden, lambda: kv.read_secret_metadata(path="private/db"), 403, "permission denied")
    ok()

    step("listing_shows_only_what_may_be_listed")
    check(kv.list_secrets(path="")["data"]["keys"] == ["team/"], "only team/ at the root")
    expect_error(hexc.InvalidPath, lambda: kv.list_secrets(path="private"), 404)
    ok()


def main():
    if len(sys.argv) != 4 or sys.argv[2] not in ("full", "forbidden"):
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    c = client(sys.argv[1])
    if sys.argv[2] == "full":
        full(c, sys.argv[3])
    else:
        forbidden(c)


if __name__ == "__main__":
    main()
