#!/usr/bin/env bash
# Builds a file-based Go module proxy holding go.bytecodealliance.org/pkg
# v0.4.0, the runtime package of the bindings wit-bindgen 0.63.0 generates,
# and prints the environment Go commands need to use it.
#
#   eval "$(sdk/go/tools/goproxy.sh)"   # then: go test ./..., go build ...
#
# Why: the module is not served by every Go module proxy, and its exact
# source ships inside the Rust crate wit-bindgen-go 0.63.0 (src/pkg). This
# script takes it from there (fetching the crate with cargo on a fresh
# machine) and lays it out as a GOPROXY=file://... directory:
#
#   $INGESTA_CACHE/goproxy/go.bytecodealliance.org/pkg/@v/{list,v0.4.0.info,v0.4.0.mod,v0.4.0.zip}
#
# The zip is built deterministically in Go's module-zip layout, so its h1:
# hash (committed in go.sum files) is the same on every machine. A second
# run is a fast no-op. Progress goes to stderr; stdout is only the exports.
set -euo pipefail

MODULE=go.bytecodealliance.org/pkg
VERSION=v0.4.0
CRATE=wit-bindgen-go
CRATE_VERSION=0.63.0
TOOLCHAIN=go1.27.3

CACHE="${INGESTA_CACHE:-$HOME/.cache/ingesta}"
PROXY="$CACHE/goproxy"
VDIR="$PROXY/$MODULE/@v"

print_env() {
    echo "export GOPROXY='file://$PROXY,https://proxy.golang.org,direct'"
    echo "export GONOSUMDB='go.bytecodealliance.org'"
    echo "export GOTOOLCHAIN='$TOOLCHAIN'"
}

if [[ -s "$VDIR/$VERSION.zip" && -s "$VDIR/$VERSION.mod" && -s "$VDIR/$VERSION.info" && -s "$VDIR/list" ]]; then
    print_env
    exit 0
fi

# Locate the crate source, fetching it with cargo if the registry lacks it.
find_crate() {
    local home="${CARGO_HOME:-$HOME/.cargo}"
    compgen -G "$home/registry/src/*/$CRATE-$CRATE_VERSION/src/pkg/go.mod" | head -n 1 || true
}
gomod="$(find_crate)"
if [[ -z "$gomod" ]]; then
    echo "goproxy: fetching $CRATE $CRATE_VERSION with cargo" >&2
    work="$CACHE/go-pkg-src"
    mkdir -p "$work/src"
    cat >"$work/Cargo.toml" <<TOML
[package]
name = "ingesta-go-pkg-src"
version = "0.0.0"
edition = "2021"
publish = false

[lib]
path = "src/lib.rs"

[dependencies]
$CRATE = "=$CRATE_VERSION"

[workspace]
TOML
    : >"$work/src/lib.rs"
    # Downloading and unpacking only; nothing is compiled.
    cargo fetch --manifest-path "$work/Cargo.toml" >&2
    gomod="$(find_crate)"
    if [[ -z "$gomod" ]]; then
        # A registry under a non-default CARGO_HOME: ask cargo where it is.
        gomod="$(cargo metadata --format-version 1 --manifest-path "$work/Cargo.toml" |
            python3 -c 'import json,sys,os
for p in json.load(sys.stdin)["packages"]:
    if p["name"]==sys.argv[1] and p["version"]==sys.argv[2]:
        print(os.path.join(os.path.dirname(p["manifest_path"]),"src","pkg","go.mod"))' "$CRATE" "$CRATE_VERSION")"
    fi
fi
if [[ -z "$gomod" || ! -f "$gomod" ]]; then
    echo "goproxy: cannot find $CRATE-$CRATE_VERSION/src/pkg" >&2
    exit 1
fi
src="$(dirname "$gomod")"
echo "goproxy: building $MODULE@$VERSION from $src" >&2

mkdir -p "$VDIR"
tmp="$(mktemp -d "$VDIR/.tmp.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
python3 - "$src" "$MODULE" "$VERSION" "$tmp" <<'PY'
import os, stat, sys, zipfile

src, module, version, out = sys.argv[1:]
prefix = f"{module}@{version}/"
VCS = {".bzr", ".git", ".hg", ".svn"}

files = []
for root, dirs, names in os.walk(src):
    rel_root = os.path.relpath(root, src)
    keep = []
    for d in sorted(dirs):
        full = os.path.join(root, d)
        # Like golang.org/x/mod/zip: skip VCS directories, vendor trees and
        # nested modules (a directory with its own go.mod).
        if d in VCS or d == "vendor" or os.path.exists(os.path.join(full, "go.mod")):
            continue
        keep.append(d)
    dirs[:] = keep
    for name in names:
        full = os.path.join(root, name)
        if not stat.S_ISREG(os.lstat(full).st_mode):
            continue  # only regular files (no symlinks)
        rel = name if rel_root == "." else os.path.join(rel_root, name)
        files.append(rel.replace(os.sep, "/"))

files.sort()
with zipfile.ZipFile(os.path.join(out, f"{version}.zip"), "w", zipfile.ZIP_DEFLATED) as z:
    for rel in files:
        info = zipfile.ZipInfo(prefix + rel, date_time=(2019, 10, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        info.external_attr = 0o644 << 16
        with open(os.path.join(src, rel), "rb") as f:
            z.writestr(info, f.read())

with open(os.path.join(src, "go.mod"), "rb") as f:
    gomod = f.read()
with open(os.path.join(out, f"{version}.mod"), "wb") as f:
    f.write(gomod)
with open(os.path.join(out, f"{version}.info"), "w") as f:
    f.write('{"Version":"%s","Time":"2019-10-01T00:00:00Z"}\n' % version)
with open(os.path.join(out, "list"), "w") as f:
    f.write(version + "\n")
PY
for f in "$VERSION.zip" "$VERSION.mod" "$VERSION.info" list; do
    mv -f "$tmp/$f" "$VDIR/$f"
done
print_env
