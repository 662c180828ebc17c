#!/usr/bin/env python3
"""Compares an image layerfarm built with the same Dockerfile built by BuildKit (issue 6).

    compare_images.py --case NAME --allow ALLOW_FILE LF_DIR BK_DIR

LF_DIR and BK_DIR each hold what tests/e2e/compare_buildkit.sh fetched with independent tools:
  manifest.json   skopeo inspect --raw             (the manifest as pushed)
  config.json     skopeo inspect --config --raw    (the config blob as pushed)
  layout/         skopeo copy to an OCI layout     (the layer blobs)
  bundle/rootfs/  umoci unpack of that layout      (the root filesystem)

Compared: manifest and config media types; architecture/os/variant; the runtime config fields
(Env, Entrypoint, Cmd, WorkingDir, User, Labels, ExposedPorts, Volumes, StopSignal, Healthcheck,
plus any key only one side has); history (count, created_by, empty_layer, comment; not the
timestamps); layers and diff_ids (count; for layers whose diff_ids differ, the tar entries
ignoring mtimes); and the unpacked trees (paths, types, modes, uid/gid, symlink targets, device
numbers, file contents by SHA-256; not mtimes).

Every difference is printed as one line "KEY: layerfarm=... buildkit=...". ALLOW_FILE lists the
known ones, one per line: "CASE|REGEX|REASON" (CASE "*" for every case; REGEX searched in the
line, so it cannot hold "|"). Known differences print as KNOWN with their reason; the exit status is 1 when any
difference is not known, 0 otherwise.
"""

import argparse
import gzip
import hashlib
import json
import os
import re
import stat
import sys
import tarfile

CONFIG_FIELDS = ["Env", "Entrypoint", "Cmd", "WorkingDir", "User", "Labels", "ExposedPorts",
                 "Volumes", "StopSignal", "Healthcheck"]
# Docker's config carries these with null/empty values; absent and empty mean the same thing.
EMPTY = (None, "", [], {})


def load_json(path):
    with open(path, "rb") as f:
        return json.load(f)


def show(value):
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


class Differences:
    def __init__(self):
        self.lines = []

    def add(self, key, lf, bk):
        self.lines.append(f"{key}: layerfarm={show(lf)} buildkit={show(bk)}")

    def compare(self, key, lf, bk):
        if not (lf == bk or (lf in EMPTY and bk in EMPTY)):
            self.add(key, lf, bk)


def compare_manifest(lf_dir, bk_dir, diffs):
    lf, bk = load_json(f"{lf_dir}/manifest.json"), load_json(f"{bk_dir}/manifest.json")
    diffs.compare("manifest.mediaType", lf.get("mediaType"), bk.get("mediaType"))
    diffs.compare("manifest.config.mediaType", lf["config"]["mediaType"], bk["config"]["mediaType"])
    for i, (a, b) in enumerate(zip(lf["layers"], bk["layers"])):
        diffs.compare(f"manifest.layers[{i}].mediaType", a["mediaType"], b["mediaType"])
    for key in sorted(set(lf) ^ set(bk)):
        diffs.compare(f"manifest.key.{key}", lf.get(key), bk.get(key))


def compare_config(lf, bk, diffs):
    for key in ["architecture", "os", "variant"]:
        diffs.compare(f"config.{key}", lf.get(key), bk.get(key))
    lc, bc = lf.get("config") or {}, bk.get("config") or {}
    for key in CONFIG_FIELDS:
        diffs.compare(f"config.config.{key}", lc.get(key), bc.get(key))
    for key in sorted((set(lc) | set(bc)) - set(CONFIG_FIELDS)):
        diffs.compare(f"config.config.{key}", lc.get(key), bc.get(key))
    # Top-level keys beyond the ones compared here or by compare_history/compare_layers.
    handled = {"architecture", "os", "variant", "config", "history", "rootfs", "created"}
    for key in sorted((set(lf) | set(bk)) - handled):
        diffs.compare(f"config.{key}", lf.get(key), bk.get(key))


def label(entry):
    """A short name for a history entry in difference keys: its instruction, cut at 40 chars."""
    text = (entry or {}).get("created_by", "")
    return json.dumps(text if len(text) <= 40 else text[:39] + "…", ensure_ascii=False)


def compare_history(lf, bk, diffs):
    lh, bh = lf.get("history") or [], bk.get("history") or []
    diffs.compare("history.count", len(lh), len(bh))
    # Entries line up from the start (the base's) as long as both sides have one per step.
    for i, (a, b) in enumerate(zip(lh, bh)):
        for key in ["created_by", "comment", "author"]:
            diffs.compare(f"history[{i}] {label(a)} {key}", a.get(key, ""), b.get(key, ""))
        diffs.compare(f"history[{i}] {label(a)} empty_layer", bool(a.get("empty_layer")),
                      bool(b.get("empty_layer")))
    for i in range(len(bh), len(lh)):
        diffs.add(f"history[{i}] only in layerfarm", lh[i], None)
    for i in range(len(lh), len(bh)):
        diffs.add(f"history[{i}] only in buildkit", None, bh[i])


def layer_blobs(layout):
    index = load_json(f"{layout}/index.json")
    digest = index["manifests"][0]["digest"]
    manifest = load_json(f"{layout}/blobs/{digest.replace(':', '/')}")
    return [f"{layout}/blobs/{l['digest'].replace(':', '/')}" for l in manifest["layers"]]


def tar_entries(blob):
    """path -> (type, mode, uid, gid, linkname, size, sha256) for a (gzip) layer, no mtimes."""
    with open(blob, "rb") as f:
        magic = f.read(2)
    opener = gzip.open if magic == b"\x1f\x8b" else open
    entries = {}
    with opener(blob, "rb") as raw, tarfile.open(fileobj=raw, mode="r|") as tar:
        for m in tar:
            name = m.name[2:] if m.name.startswith("./") else m.name
            name = "/" + name.strip("/") if name not in ("", ".") else "/"
            digest = ""
            if m.isreg():
                digest = hashlib.sha256(tar.extractfile(m).read()).hexdigest()[:16]
            link = m.linkname if (m.issym() or m.islnk()) else ""
            kind = "hardlink" if m.islnk() else {
                tarfile.REGTYPE: "file", tarfile.AREGTYPE: "file", tarfile.DIRTYPE: "dir",
                tarfile.SYMTYPE: "symlink", tarfile.CHRTYPE: "char", tarfile.BLKTYPE: "block",
                tarfile.FIFOTYPE: "fifo"}.get(m.type, repr(m.type))
            # Permission bits only: Go's archive/tar also stores the type bits (0o100644) in the
            # mode field, which says nothing the entry type does not.
            entries[name] = {"type": kind, "mode": oct(m.mode & 0o7777), "uid": m.uid, "gid": m.gid,
                             "link": link, "size": m.size, "sha256": digest}
    return entries


def compare_entry_maps(prefix, lf, bk, diffs):
    for path in sorted(set(lf) | set(bk)):
        a, b = lf.get(path), bk.get(path)
        if a is None or b is None:
            diffs.add(f"{prefix}{path}", a, b)
            continue
        for field in a:
            diffs.compare(f"{prefix}{path} {field}", a[field], b[field])


def layer_owners(config):
    """The history entry of each layer, in layer order (None when the history is short)."""
    owners = [h for h in config.get("history") or [] if not h.get("empty_layer")]
    n = len(config["rootfs"]["diff_ids"])
    return (owners + [None] * n)[:n]


def compare_layers(lf, bk, lf_dir, bk_dir, diffs):
    ld, bd = lf["rootfs"]["diff_ids"], bk["rootfs"]["diff_ids"]
    diffs.compare("rootfs.type", lf["rootfs"].get("type"), bk["rootfs"].get("type"))
    lo, bo = layer_owners(lf), layer_owners(bk)
    if len(ld) != len(bd):
        # Name the kind of step (first word) whose layers one side has more of.
        def kinds(owners):
            out = {}
            for o in owners:
                k = (o or {}).get("created_by", "?").split(" ")[0]
                out[k] = out.get(k, 0) + 1
            return out
        lk, bk_kinds = kinds(lo), kinds(bo)
        extra = {k: bk_kinds.get(k, 0) - lk.get(k, 0) for k in set(lk) | set(bk_kinds)}
        extra = {k: v for k, v in sorted(extra.items()) if v}
        diffs.add(f"rootfs.diff_ids.count (buildkit minus layerfarm layers by step: {show(extra)})",
                  len(ld), len(bd))
    lblobs, bblobs = layer_blobs(f"{lf_dir}/layout"), layer_blobs(f"{bk_dir}/layout")
    # Pair layers by the history entry that made them when the histories line up, else by
    # position.
    lh, bh = lf.get("history") or [], bk.get("history") or []
    if len(lh) == len(bh):
        def by_entry(history):
            out, n = {}, 0
            for i, h in enumerate(history):
                if not h.get("empty_layer"):
                    out[i] = n
                    n += 1
            return out
        lmap, bmap = by_entry(lh), by_entry(bh)
        pairs = [(lmap.get(i), bmap.get(i), lh[i]) for i in sorted(set(lmap) | set(bmap))]
    else:
        pairs = [(i if i < len(ld) else None, i if i < len(bd) else None,
                  (lo + bo)[i] if i < len(lo) else (bo[i] if i < len(bo) else None))
                 for i in range(max(len(ld), len(bd)))]
    same = []
    for li, bi, entry in pairs:
        if li is None or bi is None:
            side, idx, blobs = ("buildkit", bi, bblobs) if li is None else ("layerfarm", li, lblobs)
            paths = sorted(tar_entries(blobs[idx]))
            diffs.add(f"layer only in {side} for {label(entry)}", *(
                (None, paths) if side == "buildkit" else (paths, None)))
            continue
        if ld[li] == bd[bi]:
            same.append(li)
            continue
        # Different bytes: compare what is in them. Equal entries mean the tars differ only in
        # what is ignored here (mtimes, header format, order).
        before = len(diffs.lines)
        compare_entry_maps(f"layer {label(entry)}:", tar_entries(lblobs[li]),
                           tar_entries(bblobs[bi]), diffs)
        if len(diffs.lines) == before:
            print(f"info: layer {label(entry)}: diff_ids differ ({ld[li][:19]} / {bd[bi][:19]})"
                  " but the entries are equal ignoring mtimes")
    print(f"info: diff_ids equal for layerfarm layers {same} of {len(ld)} (buildkit {len(bd)})")


def tree(root):
    """path -> attributes of every entry under root (not following symlinks), no mtimes."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            rel = "/" + os.path.relpath(full, root)
            attrs = {"type": stat.S_IFMT(st.st_mode), "mode": oct(stat.S_IMODE(st.st_mode)),
                     "uid": st.st_uid, "gid": st.st_gid}
            if stat.S_ISLNK(st.st_mode):
                attrs["link"] = os.readlink(full)
            elif stat.S_ISREG(st.st_mode):
                with open(full, "rb") as f:
                    attrs["sha256"] = hashlib.sha256(f.read()).hexdigest()[:16]
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                attrs["rdev"] = st.st_rdev
            out[rel] = attrs
    names = {stat.S_IFDIR: "dir", stat.S_IFREG: "file", stat.S_IFLNK: "symlink",
             stat.S_IFCHR: "char", stat.S_IFBLK: "block", stat.S_IFIFO: "fifo",
             stat.S_IFSOCK: "socket"}
    for attrs in out.values():
        attrs["type"] = names.get(attrs["type"], attrs["type"])
    return out


def compare_trees(lf_dir, bk_dir, diffs):
    a, b = tree(f"{lf_dir}/bundle/rootfs"), tree(f"{bk_dir}/bundle/rootfs")
    st = os.lstat(f"{lf_dir}/bundle/rootfs"), os.lstat(f"{bk_dir}/bundle/rootfs")
    diffs.compare("rootfs:/ mode", oct(stat.S_IMODE(st[0].st_mode)), oct(stat.S_IMODE(st[1].st_mode)))
    before = len(diffs.lines)
    compare_entry_maps("rootfs:", a, b, diffs)
    print(f"info: unpacked trees: {len(a)} / {len(b)} entries, "
          f"{len(diffs.lines) - before} differences")


def load_allow(path, case):
    rules = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            parts = line.split("|", 2)
            if len(parts) != 3:
                sys.exit(f"{path}:{n}: expected CASE|REGEX|REASON, got {line!r}")
            if parts[0] in ("*", case):
                rules.append((re.compile(parts[1]), parts[2]))
    return rules


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--case", required=True)
    p.add_argument("--allow", required=True)
    p.add_argument("lf_dir")
    p.add_argument("bk_dir")
    args = p.parse_args()
    lf, bk = load_json(f"{args.lf_dir}/config.json"), load_json(f"{args.bk_dir}/config.json")
    diffs = Differences()
    compare_manifest(args.lf_dir, args.bk_dir, diffs)
    compare_config(lf, bk, diffs)
    compare_history(lf, bk, diffs)
    compare_layers(lf, bk, args.lf_dir, args.bk_dir, diffs)
    compare_trees(args.lf_dir, args.bk_dir, diffs)

    rules = load_allow(args.allow, args.case)
    unknown = 0
    for line in diffs.lines:
        reason = next((r for rx, r in rules if rx.search(line)), None)
        if reason is None:
            unknown += 1
            print(f"DIFF  {args.case} {line}")
        else:
            print(f"KNOWN {args.case} {line}\n        ({reason})")
    print(f"{args.case}: {len(diffs.lines)} differences, {unknown} not known")
    return 1 if unknown else 0


if __name__ == "__main__":
    sys.exit(main())
