#!/usr/bin/env bash
# Runs a command with at most MIB MiB of memory, the page cache it fills included: in a
# memory cgroup of its own (cgroup v2 memory.max, else cgroup v1 memory.limit_in_bytes),
# removed again when the command ends. Swap is not allowed either, so the limit holds.
#
#   scripts/memlimit.sh MIB COMMAND [ARGS...]
#
# Needs write access to the cgroup file system (root, or a delegated subtree). Exits with
# the command's status, or 3 (with a message) when no memory cgroup can be made here.
set -euo pipefail

if [ $# -lt 2 ] || ! [[ "$1" =~ ^[0-9]+$ ]] || [ "$1" -eq 0 ]; then
  echo "usage: scripts/memlimit.sh MIB COMMAND [ARGS...]" >&2
  exit 2
fi
mib=$1
shift
bytes=$((mib << 20))
name="xgrad-memlimit-$$"

cg=""
v2=/sys/fs/cgroup
v1=/sys/fs/cgroup/memory
if [ -f "$v2/cgroup.controllers" ] && grep -qw memory "$v2/cgroup.controllers" &&
  [ -w "$v2/cgroup.subtree_control" ]; then
  # The root's children get the memory controller only when the root enables it for them.
  grep -qw memory "$v2/cgroup.subtree_control" || echo +memory >"$v2/cgroup.subtree_control"
  if mkdir "$v2/$name" 2>/dev/null; then
    cg="$v2/$name"
    echo "$bytes" >"$cg/memory.max"
    [ -f "$cg/memory.swap.max" ] && echo 0 >"$cg/memory.swap.max"
  fi
elif [ -f "$v1/memory.limit_in_bytes" ] && mkdir "$v1/$name" 2>/dev/null; then
  cg="$v1/$name"
  echo "$bytes" >"$cg/memory.limit_in_bytes"
  # Memory plus swap: the same limit, where the kernel accounts swap.
  [ -f "$cg/memory.memsw.limit_in_bytes" ] && echo "$bytes" >"$cg/memory.memsw.limit_in_bytes"
fi
if [ -z "$cg" ]; then
  echo "memlimit.sh: no writable memory cgroup here (needs root or a delegated cgroup)" >&2
  exit 3
fi

# The group can only be removed once empty: its last process has ended by then, and the
# pages it still charges move to the parent.
trap 'rmdir "$cg" 2>/dev/null || true' EXIT
status=0
sh -c 'echo $$ >"$1/cgroup.procs" && shift && exec "$@"' sh "$cg" "$@" || status=$?
if [ -f "$cg/memory.max_usage_in_bytes" ]; then
  peak=$(cat "$cg/memory.max_usage_in_bytes")
elif [ -f "$cg/memory.peak" ]; then
  peak=$(cat "$cg/memory.peak")
else
  peak=""
fi
[ -n "$peak" ] && echo "memlimit.sh: limit ${mib} MiB, peak use (page cache included) $((peak >> 20)) MiB" >&2
exit "$status"
