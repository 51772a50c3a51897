#!/bin/sh
# Every public header must compile on its own, as C11 and as C++, pedantic and warning-free.
# usage: check_headers.sh INCLUDE_DIR C_COMPILER CXX_COMPILER
set -eu
inc=$1 cc=$2 cxx=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
n=0
for h in "$inc"/deepseek.h "$inc"/deepseek/*.h; do
  rel=${h#"$inc"/}
  printf '#include <%s>\n#include <%s>\nint ds_header_selftest_dummy;\n' "$rel" "$rel" > "$tmp/t.c"
  cp "$tmp/t.c" "$tmp/t.cpp"
  "$cc" -std=c11 -pedantic -Wall -Wextra -Werror -I"$inc" -c "$tmp/t.c" -o "$tmp/t.o" ||
    { echo "FAIL (C11): $rel"; exit 1; }
  "$cxx" -std=c++11 -pedantic -Wall -Wextra -Werror -I"$inc" -c "$tmp/t.cpp" -o "$tmp/t.o" ||
    { echo "FAIL (C++11): $rel"; exit 1; }
  n=$((n + 1))
done
echo "header self-test: $n headers compile alone as C11 and C++11"
