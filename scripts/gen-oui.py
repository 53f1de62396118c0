#!/usr/bin/env python3
"""Generate src/inventory/oui.tsv from the IEEE MAC address registries.

The input is the set of CSV files shipped by Debian's `ieee-data` package
(`apt-get install ieee-data`), which mirror the IEEE Registration Authority's
public listings:

    oui.csv    MA-L  24-bit prefixes  -> 6 hex digits
    mam.csv    MA-M  28-bit prefixes  -> 7 hex digits
    oui36.csv  MA-S  36-bit prefixes  -> 9 hex digits
    iab.csv    IAB   36-bit prefixes  -> 9 hex digits (legacy, same size as MA-S)

cid.csv (Company IDs) is deliberately ignored: CIDs live in the locally
administered address space, for which netguardian never reports a vendor.

Output format (one assignment per line, sorted by prefix):

    # comment lines
    HEXPREFIX<TAB>Vendor

Vendor names are shortened to keep the table small: Unicode is NFKC-normalised,
whitespace collapsed, corporate suffixes (", Inc.", "Co., Ltd", "Corporation",
"GmbH", ...) stripped, and the result capped at 32 characters.  The special
names "Private" and "IEEE Registration Authority" are kept verbatim; the Rust
side maps them to "no vendor".

Usage:
    scripts/gen-oui.py [SRC_DIR] [-o OUT]

SRC_DIR defaults to /usr/share/ieee-data, OUT to src/inventory/oui.tsv next to
this script's repository root.  Python 3 standard library only.
"""

from __future__ import annotations

import argparse
import csv
import datetime as _dt
import os
import re
import sys
import unicodedata

# (file name, registry label expected in column 0, hex digits)
SOURCES = [
    ("oui.csv", "MA-L", 6),
    ("mam.csv", "MA-M", 7),
    ("oui36.csv", "MA-S", 9),
    ("iab.csv", "IAB", 9),
]

MAX_NAME = 32

# Names with a meaning of their own: never shortened.
VERBATIM = {"Private", "IEEE Registration Authority"}

# Trailing legal-form suffixes, matched case-insensitively at the end of the
# name (after an optional comma).  Applied repeatedly, so "Foo Co., Ltd." and
# "Foo GmbH & Co. KG" both shrink to "Foo".
_SUFFIXES = [
    r"inc(?:orporated)?",
    r"corp(?:oration|orate)?",
    r"co(?:mpany)?\s*[.,]?\s*(?:ltd|limited)",
    r"(?:pvt|pte|pty|private)\s*\.?\s*(?:ltd|limited)",
    r"ltd",
    r"limited",
    r"l\.?l\.?c",
    r"l\.?l\.?p",
    r"gmbh",
    r"mbh",
    r"co\.?\s*kg",
    r"kg(?:aa)?",
    r"ag",
    r"s\.?a\.?s",
    r"s\.?a\.?u",
    r"s\.?a\.?\s*de\s*c\.?v",
    r"s\.?a",
    r"s\.?p\.?a",
    r"s\.?r\.?l",
    r"s\.?r\.?o",
    r"s\.?l",
    r"sp\.?\s*z\s*o\.?\s*o",
    r"spol\.?\s*s\s*r\.?\s*o",
    r"b\.?v",
    r"n\.?v",
    r"a/s",
    r"aps",
    r"as",
    r"ab",
    r"oy",
    r"plc",
    r"pty",
    r"pte",
    r"sdn\.?\s*bhd",
    r"bhd",
    r"k\.?k",
    r"ltda",
    r"lda",
    r"e\.?k",
    r"ug",
    r"co",
    r"company",
]
_SUFFIX_RE = re.compile(
    r"(?:^|(?<=[\s,)]))(?:" + "|".join(_SUFFIXES) + r")\s*\.?\s*$", re.IGNORECASE
)
_TRAIL_RE = re.compile(r"[\s,.;:&/+\-(]+$")
_LEAD_RE = re.compile(r"^[\s,.;:]+")
# "Aruba, a Hewlett Packard Enterprise Company", "Foo, a division of Bar"
_PARENT_RE = re.compile(
    r",\s*an?\s+(?:division|subsidiary|unit|member)\s+of\b.*$"
    r"|,\s*an?\s+.*\b(?:company|compny|brand|subsidiary)\s*\.?$",
    re.IGNORECASE,
)


def _close_parens(name: str) -> str:
    """Drop a trailing unbalanced "(..." fragment (left by truncation)."""
    if name.count("(") > name.count(")"):
        cut = _TRAIL_RE.sub("", name[: name.rfind("(")])
        if cut:
            return cut
    return name


def shorten(name: str) -> str:
    """Return a compact display form of an IEEE organisation name."""
    name = unicodedata.normalize("NFKC", name)
    name = " ".join(name.split())
    if name in VERBATIM:
        return name
    name = _LEAD_RE.sub("", name)
    name = _PARENT_RE.sub("", name) or name
    while True:
        m = _SUFFIX_RE.search(name)
        if not m:
            break
        cut = _TRAIL_RE.sub("", name[: m.start()])
        if not cut:
            break  # the whole name is a legal form: keep it
        name = cut
    name = _TRAIL_RE.sub("", name) or name
    if len(name) > MAX_NAME:
        head = name[:MAX_NAME]
        sp = head.rfind(" ")
        if sp >= MAX_NAME // 2:
            head = head[:sp]
        name = _TRAIL_RE.sub("", head) or head
    return _close_parens(name)


def read_registry(path: str, label: str, digits: int) -> list[tuple[str, str]]:
    out = []
    with open(path, encoding="utf-8", errors="replace", newline="") as fh:
        for row in csv.reader(fh):
            if len(row) < 3 or row[0].strip() != label:
                continue  # header or junk
            prefix = row[1].strip().upper()
            if len(prefix) != digits or not re.fullmatch(r"[0-9A-F]+", prefix):
                print(f"warning: {path}: bad assignment {row[1]!r}", file=sys.stderr)
                continue
            name = shorten(row[2])
            if not name:
                continue
            out.append((prefix, name))
    return out


def main() -> int:
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("src", nargs="?", default="/usr/share/ieee-data",
                    help="directory holding oui.csv, mam.csv, oui36.csv, iab.csv")
    ap.add_argument("-o", "--out", default=os.path.join(repo, "src", "inventory", "oui.tsv"))
    args = ap.parse_args()

    table: dict[str, set[str]] = {}
    counts = []
    for fname, label, digits in SOURCES:
        path = os.path.join(args.src, fname)
        if not os.path.exists(path):
            if fname == "oui.csv":
                print(f"error: {path} not found (apt-get install ieee-data)", file=sys.stderr)
                return 1
            print(f"note: {path} not found, skipping {label}", file=sys.stderr)
            continue
        rows = read_registry(path, label, digits)
        counts.append(f"{label} {len(rows)}")
        for prefix, name in rows:
            table.setdefault(prefix, set()).add(name)

    # A handful of ancient MA-L prefixes are listed more than once; pick one
    # deterministically (shortest, then alphabetical).
    # "IEEE Registration Authority" marks blocks the RA sub-assigns (MA-L) or
    # has not assigned yet (MA-M/MA-S fillers).  It is no vendor, and leaving
    # it out gives the same answer (None), so it is dropped to save space.
    # "Private" is kept: it must shadow its parent block.
    lines = []
    for p, names in sorted(table.items()):
        name = min(names, key=lambda n: (len(n), n))
        if name != "IEEE Registration Authority":
            lines.append(f"{p}\t{name}")

    src_date = "unknown"
    try:
        with open(os.path.join(args.src, ".lastupdate")) as fh:
            src_date = _dt.datetime.fromtimestamp(int(fh.read().strip()), _dt.timezone.utc).date().isoformat()
    except (OSError, ValueError):
        pass
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    now = _dt.datetime.fromtimestamp(int(epoch), _dt.timezone.utc) if epoch else _dt.datetime.now(_dt.timezone.utc)

    header = [
        "# IEEE MAC address block assignments (MA-L/MA-M/MA-S/IAB) -> short vendor name.",
        f"# Source: {args.src} (Debian ieee-data, registry snapshot {src_date}); {', '.join(counts)}.",
        f"# Generated {now.date().isoformat()} by scripts/gen-oui.py; do not edit by hand.",
        "# Format: HEXPREFIX<TAB>Vendor; 6/7/9 hex digits = 24/28/36-bit prefix.",
    ]
    tmp = args.out + ".tmp"
    with open(tmp, "w", encoding="utf-8", newline="\n") as fh:
        fh.write("\n".join(header + lines) + "\n")
    os.replace(tmp, args.out)
    size = os.path.getsize(args.out)
    print(f"wrote {args.out}: {len(lines)} prefixes, {size} bytes ({size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
