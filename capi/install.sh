#!/bin/sh
# Builds the C library in release mode and installs it under PREFIX:
#   PREFIX/include/mbms_keys.h
#   PREFIX/lib/libmbms_keys.so.0.<minor>.<patch>, with the links libmbms_keys.so.0 and .so
#   PREFIX/lib/libmbms_keys.a
#   PREFIX/lib/pkgconfig/mbms-keys.pc
# Usage: capi/install.sh PREFIX        (e.g. capi/install.sh /usr/local)
# Then:  cc app.c $(PKG_CONFIG_PATH=PREFIX/lib/pkgconfig pkg-config --cflags --libs mbms-keys)
set -eu

if [ $# -ne 1 ]; then
    echo "usage: $0 PREFIX" >&2
    exit 2
fi
prefix=$1
case $prefix in
    /*) ;;
    *) prefix=$(pwd)/$prefix ;;
esac

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
target=${CARGO_TARGET_DIR:-$root/target}
case $target in
    /*) ;;
    *) target=$root/$target ;;
esac
version=$(sed -n 's/^version = "\([^"]*\)"$/\1/p' "$here/Cargo.toml" | head -n 1)
major=${version%%.*}

# The static library needs the system libraries the Rust standard library links; rustc prints
# them for the staticlib only when it compiles the crate, so the crate is always recompiled here
# (the dependencies stay cached).
touch "$here/src/lib.rs"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
(cd "$root" && "${CARGO:-cargo}" rustc --release --locked -p mbms-keys-capi --lib -- --print native-static-libs) 2>"$log" || {
    cat "$log" >&2
    exit 1
}
native=$(sed -n 's/.*native-static-libs: //p' "$log" | tail -n 1)
if [ -z "$native" ]; then
    echo "install.sh: rustc did not print the native static libraries" >&2
    cat "$log" >&2
    exit 1
fi

lib=$prefix/lib
install -d "$prefix/include" "$lib/pkgconfig"
install -m 0644 "$here/include/mbms_keys.h" "$prefix/include/mbms_keys.h"
install -m 0755 "$target/release/libmbms_keys_capi.so" "$lib/libmbms_keys.so.$version"
ln -sf "libmbms_keys.so.$version" "$lib/libmbms_keys.so.$major"
ln -sf "libmbms_keys.so.$major" "$lib/libmbms_keys.so"
install -m 0644 "$target/release/libmbms_keys_capi.a" "$lib/libmbms_keys.a"
cat >"$lib/pkgconfig/mbms-keys.pc" <<PC
prefix=$prefix
exec_prefix=\${prefix}
libdir=\${exec_prefix}/lib
includedir=\${prefix}/include

Name: mbms-keys
Description: MBMS key management (3GPP TS 33.246), UE side: sans-IO receiver and driver
Version: $version
Libs: -L\${libdir} -lmbms_keys
Libs.private: $native
Cflags: -I\${includedir}
PC
echo "installed mbms-keys $version under $prefix"
