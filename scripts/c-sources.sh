#!/usr/bin/env bash
# Prints the project's C sources and headers, NUL-separated, relative to the repository root:
# what `./dev fmt` formats and what tests/run's lint/clang-format checks.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
dirs=()
for d in core plugins include gossip dpdk tests bench; do [ -d "$d" ] && dirs+=("$d"); done
[ ${#dirs[@]} -gt 0 ] || exit 0
find "${dirs[@]}" -type f \( -name '*.c' -o -name '*.h' \) -not -path 'tests/fuzz/corpus/*' \
    -not -name '*.inc' -print0
