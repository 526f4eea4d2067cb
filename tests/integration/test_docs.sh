#!/usr/bin/env bash
# The documents agree with the tree: every repository path that README.md,
# docs/, contrib/*/README.md or a header names exists; every option the
# documents give mailrestore is one some subcommand's --help lists; every
# folder under T/.mailrestore/ they name is one the code uses; nothing
# points at a document the repository does not hold; every function of
# ours they name exists; and the README's architecture table names every
# source file and every protocol verb.
set -euo pipefail
MR=${MR_BIN:?MR_BIN must point at the mailrestore binary}
SRC=${MR_SRC:?MR_SRC must point at the source tree}
cd "$SRC"
command -v python3 >/dev/null || { echo "SKIP: python3 is not installed"; exit 77; }

# Every subcommand's --help, gathered once.
helps=$(mktemp)
trap 'rm -f "$helps"' EXIT
"$MR" --help >"$helps" 2>&1 || true
for c in $("$MR" --help 2>&1 | sed -n 's/^  \([a-z][a-z-]*\) .*/\1/p' | sort -u); do
	"$MR" "$c" --help >>"$helps" 2>&1 || true
done

python3 - "$helps" <<'PY'
import glob, os, re, sys

helps = open(sys.argv[1], encoding="utf-8", errors="replace").read()
docs = ["README.md"] + sorted(glob.glob("docs/*.md")) + ["docs/mailrestore.8"] \
    + sorted(glob.glob("contrib/*/README.md"))
headers = sorted(glob.glob("*/*.h"))
code = "".join(open(p, encoding="utf-8", errors="replace").read()
               for p in glob.glob("*/*.c") + glob.glob("cli/*/*.c"))
bad = []

# Options of other tools that the documents quote when they compare with them.
foreign = {"--delete", "--build", "--test-dir", "--install", "--output-on-failure",
           "--lz4", "--zstd", "--numeric-owner", "--inplace", "--no-whole-file",
           "--help", "--json"}
top = {"README.md", "CMakeLists.txt", ".ci", ".clang-format", ".gitignore"}
modules = "docs|contrib|bench|scripts|tests|cli|common|restore|sync|queue|engine|daemon|mail|fixture|fuzz"
path_re = re.compile(r"(?<![\w/.-])((?:%s)/[A-Za-z0-9_./-]*[A-Za-z0-9_])" % modules)

for p in docs + headers:
    text = open(p, encoding="utf-8", errors="replace").read()
    if re.search(r"\bCONTRACT\b", text):
        bad.append(f"{p}: names a CONTRACT document the repository does not hold")
    for m in path_re.finditer(text):
        rel = m.group(1)
        # Headers also quote paths inside generated mailboxes (mail/...);
        # only names of the project's own files count there.
        if p in headers and not re.search(r"\.(c|h|md|sh|8|txt|py)$|/$", rel):
            continue
        if not os.path.exists(rel):
            bad.append(f"{p}: names {rel}, which does not exist")
    if p in headers:
        continue
    # \- is how the man page spells a dash.
    plain = text.replace("\\-", "-")
    for opt in sorted(set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*[a-z0-9](?![a-z0-9*-])", plain))):
        if opt in foreign:
            continue
        if not re.search(re.escape(opt) + r"(?![a-z0-9-])", helps):
            bad.append(f"{p}: option {opt} is in no subcommand's --help")
    for sub in sorted(set(re.findall(r"\.mailrestore/([a-z][a-z_-]*)", plain))):
        if f'"{sub}' not in code and f'/{sub}' not in code:
            bad.append(f"{p}: T/.mailrestore/{sub} is used nowhere in the code")

# Every function of ours that a header or a document names as name() (or
# a family as name_*()) is defined in the code (comments and strings left
# out, so a comment cannot vouch for itself). docs/BENCHMARKS.md quotes
# other programs' functions and is left out.
def strip_c(t):
    t = re.sub(r"/\*.*?\*/", " ", t, flags=re.S)
    return re.sub(r'"(?:\\.|[^"\\\n])*"', '""', t)
defined = set(re.findall(r"\b[A-Za-z_]\w*\b", "".join(
    strip_c(open(p, encoding="utf-8", errors="replace").read())
    for p in glob.glob("*/*.c") + glob.glob("*/*.h") + glob.glob("cli/*/*.c"))))
ours = r"(?:mr|engine|queue|sync|restore|mail|daemon|eta|fixture|cli)_"
for p in [d for d in docs if d != "docs/BENCHMARKS.md"] + headers:
    text = open(p, encoding="utf-8", errors="replace").read()
    for name, star in re.findall(r"\b(%s[a-z0-9_]*)(\*?)\(\)" % ours, text):
        if star or name.endswith("_"):
            ok = any(d.startswith(name) for d in defined)
        else:
            ok = name in defined
        if not ok:
            bad.append(f"{p}: names {name}{star}(), which the code does not define")

# The README's architecture table: one row per folder (a folder may have
# more than one), naming each file of the product folders with its job. A
# file named there exists; every source file of a product folder is named
# in its folder's rows or covered by a pattern there (`*.c`); every
# top-level folder has a row; every verb of docs/PROTOCOL.md is placed.
readme = open("README.md", encoding="utf-8").read()
m = re.search(r"^## Architecture\n(.*?)(?=^## )", readme, re.S | re.M)
arch = m.group(1) if m else ""
if not arch:
    bad.append("README.md: no Architecture section")
rows = {}
for line in arch.splitlines():
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    fm = re.fullmatch(r"`([a-z]+)/`", cells[0]) if len(cells) > 1 else None
    if fm:
        rows.setdefault(fm.group(1), []).append(" ".join(cells[1:]))
product = ["common", "restore", "sync", "queue", "mail", "engine", "daemon", "fixture", "cli"]
for d in sorted(set(e.name for e in os.scandir(".")
                    if e.is_dir() and not e.name.startswith((".", "build")))):
    if d not in rows:
        bad.append(f"README.md: the architecture table has no row for {d}/")
import fnmatch
for d, cells in rows.items():
    named, patterns = set(), []
    for tok in re.findall(r"`([^`\s]+\.(?:c|h|sh))`", " ".join(cells)):
        if "*" in tok:
            patterns.append(tok)
            continue
        rel = tok if os.path.exists(tok) and "/" in tok else os.path.join(d, tok)
        if not os.path.exists(rel):
            bad.append(f"README.md: the architecture row of {d}/ names {tok}, which does not exist")
        named.add(os.path.normpath(rel))
    if d not in product:
        continue
    for root, _, files in os.walk(d):
        for f in files:
            rel = os.path.normpath(os.path.join(root, f))
            if not f.endswith((".c", ".h")) or rel in named:
                continue
            if any(fnmatch.fnmatch(os.path.relpath(rel, d), p) for p in patterns):
                continue
            bad.append(f"README.md: the architecture table does not name {rel}")
proto = open("docs/PROTOCOL.md", encoding="utf-8").read()
vm = re.search(r"^## Verbs\n(.*?)(?=^## )", proto, re.S | re.M)
verbs = set()
# Each verb opens a paragraph: "`LOGIN USER` - ...", "`PAUSE`, `RESUME` ...".
for para in (vm.group(1) if vm else "").split("\n\n"):
    head = re.match(r"(?:`[A-Z]{3,}[^`]*`(?:, )?)+", para.strip())
    if head:
        verbs.update(re.findall(r"`([A-Z]{3,})", head.group(0)))
if not verbs:
    bad.append("docs/PROTOCOL.md: no verbs found under ## Verbs")
for v in sorted(verbs):
    if f"`{v}`" not in arch:
        bad.append(f"README.md: the architecture section does not say where verb {v} lives")

for b in bad:
    print("FAIL:", b)
if bad:
    sys.exit(1)
print(f"docs: {len(docs)} documents and {len(headers)} headers agree with the tree")
PY
