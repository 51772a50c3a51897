#!/bin/sh
# Installs the build into a temporary prefix, then builds and runs a small program against it
# with find_package(deepseek) (shared and static targets) and with pkg-config.
# usage: run.sh BUILD_DIR SOURCE_DIR C_COMPILER
set -eu
build=$1 src=$2 cc=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prefix="$tmp/prefix"
cmake --install "$build" --prefix "$prefix" >/dev/null

cmake -S "$src/tests/consumer" -B "$tmp/cmake-build" -DCMAKE_PREFIX_PATH="$prefix" \
  -DCMAKE_C_COMPILER="$cc" >/dev/null
cmake --build "$tmp/cmake-build" >/dev/null
"$tmp/cmake-build/consumer_shared"
"$tmp/cmake-build/consumer_static"

pcdir=$(dirname "$(find "$prefix" -name deepseek.pc | head -n 1)")
export PKG_CONFIG_PATH="$pcdir"
# shellcheck disable=SC2046
"$cc" -std=c11 -o "$tmp/pc_shared" "$src/tests/consumer/consumer.c" $(pkg-config --cflags --libs deepseek)
LD_LIBRARY_PATH="$(pkg-config --variable=libdir deepseek)" "$tmp/pc_shared"
# shellcheck disable=SC2046
"$cc" -std=c11 -o "$tmp/pc_static" "$src/tests/consumer/consumer.c" -DDS_STATIC_DEFINE \
  $(pkg-config --cflags deepseek) "$(pkg-config --variable=libdir deepseek)/libdeepseek.a" \
  $(pkg-config --libs-only-l --static deepseek | sed 's/-ldeepseek//') $(pkg-config --libs-only-L --static deepseek)
"$tmp/pc_static"
echo "consumer: find_package (shared, static) and pkg-config (shared, static) all built and ran"
