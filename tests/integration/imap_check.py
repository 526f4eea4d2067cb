#!/usr/bin/env python3
"""What a user's mail client sees, for the client tests (test_client_*.sh).

A restore is judged here the way a mail client judges it: by what an IMAP
server answers (UIDVALIDITY, UIDs, flags, the bytes of every message) and
by what a real client (isync's mbsync) does next (which bodies it fetches,
whether it complains about a UIDVALIDITY change, what its local store
holds). Each subcommand prints what it found and exits 1 on a difference:

  snapshot ADDR PORT USER PASS OUT.json   every folder, UID, flag and body
  same A.json B.json [nosubs]             equal, message by message (nosubs:
                                          subscriptions are not compared)
  kept OLD.json NEW.json                  messages of OLD still in NEW keep
                                          their UID and UIDVALIDITY
  newer OLD.json NEW.json                 "FOLDER UID" of what NEW has that
                                          OLD lacks (what a client must fetch)
  fetched MBSYNC.log                      "FOLDER UID" of each body that
                                          mbsync -Dn fetched
  uidvalidity MBSYNC.log                  lines where mbsync saw a changed
                                          UIDVALIDITY (exit 1 when any)
  local LOCAL SNAP.json                   mbsync's Maildir and its state
                                          agree with the server: same
                                          messages once each, same flags
"""
import email.parser
import hashlib
import imaplib
import json
import os
import re
import sys

FLAG_LETTERS = {"D": "\\Draft", "F": "\\Flagged", "R": "\\Answered",
                "S": "\\Seen", "T": "\\Deleted"}
LIST_RE = re.compile(rb'^\((?P<attrs>[^)]*)\) (?:NIL|"(?:[^"\\]|\\.)*") (?P<name>.*)$')


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


def unquote(name):
    name = name.strip()
    if name.startswith(b'"') and name.endswith(b'"'):
        name = re.sub(rb'\\(.)', rb'\1', name[1:-1])
    return name.decode()


def message_id(body):
    hdr = email.parser.BytesHeaderParser().parsebytes(body)
    return (hdr.get("Message-ID") or "").strip()


def folders_of(m):
    typ, data = m.list('""', '"*"')
    if typ != "OK":
        fail("LIST: %s" % data)
    out = []
    i = 0
    while i < len(data):
        item = data[i]
        if item is None:  # no folder at all
            i += 1
            continue
        if isinstance(item, tuple):  # name sent as a literal
            mm = LIST_RE.match(item[0].rstrip().rsplit(b" ", 1)[0] + b" x")
            name, attrs = item[1].decode(), mm.group("attrs") if mm else b""
        else:
            mm = LIST_RE.match(item)
            if not mm:
                i += 1
                continue
            name, attrs = unquote(mm.group("name")), mm.group("attrs")
        if b"\\noselect" not in attrs.lower():
            out.append(name)
        i += 1
    return sorted(out)


def snapshot(addr, port, user, pw, out):
    m = imaplib.IMAP4(addr, int(port), timeout=30)
    m.login(user, pw)
    snap = {"folders": {}, "subscribed": []}
    typ, data = m.lsub('""', '"*"')
    for item in data or []:
        if isinstance(item, bytes):
            mm = LIST_RE.match(item)
            if mm:
                snap["subscribed"].append(unquote(mm.group("name")))
    snap["subscribed"].sort()
    for name in folders_of(m):
        quoted = '"%s"' % name.replace("\\", "\\\\").replace('"', '\\"')
        typ, data = m.select(quoted, readonly=True)
        if typ != "OK":
            fail("%s: SELECT %s: %s" % (user, name, data))
        exists = int(data[0])
        uidvalidity = int(m.response("UIDVALIDITY")[1][0])
        msgs = {}
        if exists:
            typ, data = m.uid("FETCH", "1:*", "(UID FLAGS RFC822.SIZE)")
            for line in data:
                if not isinstance(line, bytes):
                    continue
                uid = re.search(rb"\bUID (\d+)", line)
                flags = re.search(rb"\bFLAGS \(([^)]*)\)", line)
                size = re.search(rb"\bRFC822\.SIZE (\d+)", line)
                if not uid or not flags:
                    continue
                fl = sorted(f for f in flags.group(1).decode().split() if f != "\\Recent")
                msgs[uid.group(1).decode()] = {"flags": fl, "size": int(size.group(1)) if size else None,
                                               "id": None, "sha1": None}
            typ, data = m.uid("FETCH", "1:*", "(UID BODY.PEEK[])")
            for item in data:
                if not isinstance(item, tuple):
                    continue
                uid = re.search(rb"\bUID (\d+)", item[0]).group(1).decode()
                if uid in msgs:
                    msgs[uid]["id"] = message_id(item[1])
                    msgs[uid]["sha1"] = hashlib.sha1(item[1]).hexdigest()
        snap["folders"][name] = {"uidvalidity": uidvalidity, "exists": exists, "messages": msgs,
                                 "unfetchable": sorted((u for u, v in msgs.items() if v["sha1"] is None),
                                                       key=int)}
        m.close()
    m.logout()
    with open(out, "w") as f:
        json.dump(snap, f, indent=1, sort_keys=True)
    n = sum(len(f["messages"]) for f in snap["folders"].values())
    print("%s: %d folders, %d messages" % (user, len(snap["folders"]), n))


def load(path):
    with open(path) as f:
        return json.load(f)


def same(a_path, b_path, subs="subs"):
    a, b = load(a_path), load(b_path)
    bad = []
    if subs != "nosubs" and a["subscribed"] != b["subscribed"]:
        bad.append("subscriptions %s != %s" % (a["subscribed"], b["subscribed"]))
    for name in sorted(set(a["folders"]) | set(b["folders"])):
        fa, fb = a["folders"].get(name), b["folders"].get(name)
        if fa is None or fb is None:
            bad.append("%s: only in %s" % (name, a_path if fb is None else b_path))
            continue
        if fa["uidvalidity"] != fb["uidvalidity"]:
            bad.append("%s: UIDVALIDITY %d != %d" % (name, fa["uidvalidity"], fb["uidvalidity"]))
        for side, f in ((b_path, fb),):
            if f["unfetchable"]:
                bad.append("%s: UIDs %s listed but their bodies cannot be fetched (%s)"
                           % (name, ",".join(f["unfetchable"]), side))
        for uid in sorted(set(fa["messages"]) | set(fb["messages"]), key=int):
            ma, mb = fa["messages"].get(uid), fb["messages"].get(uid)
            if ma is None or mb is None:
                which = a_path if mb is None else b_path
                bad.append("%s: UID %s (%s) only in %s" % (name, uid, (ma or mb)["id"], which))
            elif ma != mb:
                bad.append("%s: UID %s differs: %s != %s" % (name, uid, ma, mb))
    for line in bad:
        print("DIFF:", line)
    if bad:
        sys.exit(1)
    print("same: %d folders" % len(a["folders"]))


def kept(old_path, new_path):
    old, new = load(old_path), load(new_path)
    bad, n = [], 0
    for name, fo in sorted(old["folders"].items()):
        fn = new["folders"].get(name)
        if fn is None:
            continue
        if fo["uidvalidity"] != fn["uidvalidity"]:
            bad.append("%s: UIDVALIDITY %d became %d" % (name, fo["uidvalidity"], fn["uidvalidity"]))
        by_id = {}
        for uid, msg in fn["messages"].items():
            by_id.setdefault(msg["id"], []).append(uid)
        for uid, msg in sorted(fo["messages"].items(), key=lambda kv: int(kv[0])):
            now = by_id.get(msg["id"], [])
            if not now:
                continue  # expunged or moved since: not a renumbering
            n += 1
            if now != [uid]:
                bad.append("%s: %s was UID %s, is now UID %s" % (name, msg["id"], uid, ",".join(now)))
    for line in bad:
        print("DIFF:", line)
    if bad:
        sys.exit(1)
    print("kept: %d messages keep their UIDs" % n)


def newer(old_path, new_path):
    old, new = load(old_path), load(new_path)
    for name, fn in sorted(new["folders"].items()):
        fo = old["folders"].get(name, {"messages": {}})
        for uid in sorted(fn["messages"], key=int):
            if uid not in fo["messages"]:
                print(name, uid)


def uid_set(spec):
    out = []
    for part in spec.split(","):
        lo, _, hi = part.partition(":")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


def fetched(log):
    box = None
    for line in open(log, errors="replace"):
        mm = re.search(r'>>> \d+ (?:SELECT|EXAMINE) "?([^"\r\n]*)"?', line)
        if mm:
            box = mm.group(1)
            continue
        mm = re.search(r">>> \d+ UID FETCH ([0-9:,]+) \(BODY\.PEEK\[\]\)", line)
        if mm:
            for uid in uid_set(mm.group(1)):
                print(box, uid)


def uidvalidity(log):
    hits = [line.rstrip() for line in open(log, errors="replace")
            if re.search(r"UIDVALIDITY", line, re.I)
            and not re.search(r"\* OK \[UIDVALIDITY \d+\]|no UIDVALIDITY, creating new|uidvalidity=\d+$",
                              line)]
    for line in hits:
        print(line)
    sys.exit(1 if hits else 0)


def local(local_dir, snap_path):
    snap = load(snap_path)
    bad = []
    for name, f in sorted(snap["folders"].items()):
        d = os.path.join(local_dir, name)
        want = {}
        for msg in f["messages"].values():
            want[msg["id"]] = msg
        have = {}
        for sub in ("cur", "new"):
            p = os.path.join(d, sub)
            for fn in sorted(os.listdir(p)) if os.path.isdir(p) else []:
                with open(os.path.join(p, fn), "rb") as fh:
                    mid = message_id(fh.read())
                letters = fn.rsplit(":2,", 1)[1] if ":2," in fn else ""
                flags = sorted(FLAG_LETTERS[c] for c in letters if c in FLAG_LETTERS)
                have.setdefault(mid, []).append(flags)
        for mid, copies in sorted(have.items()):
            if len(copies) > 1:
                bad.append("%s: %s is in the local store %d times" % (name, mid, len(copies)))
            if mid not in want:
                bad.append("%s: %s is in the local store, not on the server" % (name, mid))
            else:
                server = sorted(x for x in want[mid]["flags"] if x in FLAG_LETTERS.values())
                if copies[0] != server:
                    bad.append("%s: %s has flags %s locally, %s on the server" % (name, mid, copies[0], server))
        for mid in sorted(set(want) - set(have)):
            bad.append("%s: %s is on the server, not in the local store" % (name, mid))
        # mbsync's own record: the far side's UIDVALIDITY and UIDs.
        state = os.path.join(d, ".mbsyncstate")
        if not os.path.exists(state):
            bad.append("%s: no .mbsyncstate" % name)
            continue
        far_uids, far_uv = set(), None
        for line in open(state):
            if line.startswith("FarUidValidity "):
                far_uv = int(line.split()[1])
            mm = re.match(r"^(\d+) (\d+)", line)
            if mm and int(mm.group(1)) and int(mm.group(2)):
                far_uids.add(mm.group(1))
        if far_uv != f["uidvalidity"]:
            bad.append("%s: mbsync knows UIDVALIDITY %s, the server says %d" % (name, far_uv, f["uidvalidity"]))
        if far_uids != set(f["messages"]):
            bad.append("%s: mbsync's state pairs far UIDs %s, the server has %s"
                       % (name, sorted(far_uids, key=int), sorted(f["messages"], key=int)))
    for line in bad:
        print("DIFF:", line)
    if bad:
        sys.exit(1)
    print("local: %d folders agree with the server" % len(snap["folders"]))


def main():
    cmds = {"snapshot": (snapshot, 5), "same": (same, 2), "same-nosubs": (same, 3), "kept": (kept, 2), "newer": (newer, 2),
            "fetched": (fetched, 1), "uidvalidity": (uidvalidity, 1), "local": (local, 2)}
    if len(sys.argv) == 5 and sys.argv[1] == "same":
        sys.argv[1] = "same-nosubs"
    if len(sys.argv) < 2 or sys.argv[1] not in cmds or len(sys.argv) - 2 != cmds[sys.argv[1]][1]:
        print(__doc__, file=sys.stderr)
        sys.exit(64)
    cmds[sys.argv[1]][0](*sys.argv[2:])


if __name__ == "__main__":
    main()
