#!/bin/sh
# Writes what `sysspan report` (HTML, folded stacks, Perfetto JSON) and `sysspan stats` make
# of each trace, with the sysspan package found in SRC, so that two commits' outputs can be
# compared byte for byte:
#
#   git archive BASE sysspan | tar -x -C /tmp/base
#   tools/reader_outputs.sh /tmp/base /tmp/out-base TRACE...
#   tools/reader_outputs.sh .         /tmp/out-new  TRACE...
#   diff -r /tmp/out-base /tmp/out-new
#
# The hash seed is fixed: the page holds a JSON object built from a set of names.
set -eu
if [ $# -lt 3 ]; then
    echo "usage: $0 SRC OUTDIR TRACE..." >&2
    exit 2
fi
src=$(cd "$1" && pwd)
out=$2
shift 2
mkdir -p "$out"
py=${PYTHON:-python3}
run() {
    PYTHONPATH=$src PYTHONHASHSEED=0 "$py" -m sysspan "$@"
}
for trace in "$@"; do
    name=$(basename "$trace" .jsonl)
    # Status and messages are compared too (the file names in them made relative).
    run report "$trace" -o "$out/$name.html" --folded "$out/$name.folded" \
        --perfetto "$out/$name.pf.json" --title T >"$out/$name.report.out" 2>&1 || echo "exit $?" >>"$out/$name.report.out"
    run stats "$trace" >"$out/$name.stats" 2>&1 || echo "exit $?" >>"$out/$name.stats"
    sed -i "s#$out/##g" "$out/$name.report.out"
done
