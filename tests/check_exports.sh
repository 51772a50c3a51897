#!/bin/sh
# The shared library must export only ds_* symbols (and its version script/ELF bookkeeping).
# usage: check_exports.sh LIBDEEPSEEK_SO
set -eu
lib=$1
syms=$(nm -D --defined-only "$lib" | awk '{print $3}' | sed 's/@.*//' | sort -u)
bad=$(printf '%s\n' "$syms" | grep -v '^ds_' | grep -v -E '^(_init|_fini|__bss_start|_edata|_end)$' || true)
count=$(printf '%s\n' "$syms" | grep -c '^ds_' || true)
if [ -n "$bad" ]; then
  echo "symbols exported without the ds_ prefix:"
  printf '  %s\n' $bad
  exit 1
fi
if [ "$count" -lt 10 ]; then
  echo "only $count ds_ symbols exported: the visibility setup is broken"
  exit 1
fi
echo "exports: $count symbols, all ds_*"
