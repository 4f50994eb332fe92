#!/bin/sh
# run.sh - build the libFuzzer targets of tests/fuzz/ with clang and run
# each in turn.
#
#   tests/fuzz/run.sh [SECONDS] [TARGET...]
#
# SECONDS (default 600) is the run time of each target (0: only build);
# TARGETs are fuzz_arch, fuzz_batch, fuzz_import, fuzz_router (default: all,
# one after the other).  The project sources come from Makefile.am (libctnas_a_SOURCES
# and SQL_FILES), built with -O1 -g -fsanitize=fuzzer-no-link,address,
# undefined into $FUZZ_BUILD (default /tmp/ctnas-fuzz-build); each target
# runs with -max_len=4096 over a copy of tests/fuzz/corpus/<target> in
# $FUZZ_BUILD/corpus/<target> (new inputs land there, never in the tree).
# Crashes, leaks and timeouts are written to $FUZZ_BUILD/artifacts/<target>/;
# reproduce one with: $FUZZ_BUILD/<target> FILE.  Environment: CC (clang),
# FUZZ_BUILD, FUZZ_JOBS (make -j for the library, default 2), FUZZ_FLAGS
# (extra libFuzzer flags).  Exit status: 0 when every target ran clean.
set -eu

secs=${1:-600}
[ $# -gt 0 ] && shift
case $secs in *[!0-9]*|'') echo "run.sh: SECONDS must be a number" >&2; exit 2;; esac
targets=${*:-fuzz_arch fuzz_batch fuzz_import fuzz_router}

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
CC=${CC:-clang}
B=${FUZZ_BUILD:-/tmp/ctnas-fuzz-build}
mkdir -p "$B/obj" "$B/corpus" "$B/artifacts"

# Variable VAR of Makefile.am (continuation lines joined, "+=" appended),
# keeping the .c files.
am_var() {
    sed -e ':a' -e '/\\$/N; s/\\\n//; ta' "$top/Makefile.am" |
        awk -v v="$1" '$1 == v && ($2 == "=" || $2 == "+=") {
            for (i = 3; i <= NF; i++) print $i }'
}
srcs=$(am_var libctnas_a_SOURCES | grep '\.c$')
sqls=$(am_var SQL_FILES)
[ -n "$srcs" ] && [ -n "$sqls" ] || {
    echo "run.sh: cannot read libctnas_a_SOURCES / SQL_FILES from Makefile.am" >&2
    exit 2
}

deps="jansson sqlite3 libmicrohttpd libuv openblas"
pkg-config --exists openblas || deps="jansson sqlite3 libmicrohttpd libuv cblas"
pcflags=$(pkg-config --cflags $deps)
pclibs="$(pkg-config --libs $deps) -lm -lpthread"

version=$(sed -n 's/^AC_INIT(\[[^]]*\], *\[\([^]]*\)\].*/\1/p' "$top/configure.ac")
printf '#define PACKAGE_VERSION "%s"\n#define VERSION "%s"\n' \
    "${version:-0}" "${version:-0}" > "$B/config.h.new"
cmp -s "$B/config.h.new" "$B/config.h" 2>/dev/null ||
    mv "$B/config.h.new" "$B/config.h"
rm -f "$B/config.h.new"
(cd "$top" && sh scripts/embed_sql.sh $sqls) > "$B/migrations.c.new"
cmp -s "$B/migrations.c.new" "$B/migrations.c" 2>/dev/null ||
    mv "$B/migrations.c.new" "$B/migrations.c"
rm -f "$B/migrations.c.new"

SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
CFLAGS_F="-std=c11 -O1 -g -fno-omit-frame-pointer -D_GNU_SOURCE
    -DSRCDIR=\"$top\" -I$B -I$top/src $pcflags"

# The library: a small Makefile so only changed sources are rebuilt.
{
    echo "objs ="
    for s in $srcs "$B/migrations.c"; do
        case $s in /*) f=$s;; *) f=$top/$s;; esac
        o=$B/obj/$(basename "$s" .c).o
        echo "objs += $o"
        echo "$o: $f $B/config.h $(ls "$top"/src/*.h "$top"/src/*.def | tr '\n' ' ')"
        printf '\t%s %s -fsanitize=fuzzer-no-link %s -c %s -o %s\n' \
            "$CC" "$(echo $CFLAGS_F)" "$SAN" "$f" "$o"
    done
    echo "$B/libctnas-fuzz.a: \$(objs)"
    printf '\trm -f $@ && ar rcs $@ $(objs)\n'
} > "$B/lib.mk"
make -s -j"${FUZZ_JOBS:-2}" -f "$B/lib.mk" "$B/libctnas-fuzz.a"

for t in $targets; do
    [ -f "$here/$t.c" ] || { echo "run.sh: no target $t" >&2; exit 2; }
    $CC $CFLAGS_F -fsanitize=fuzzer $SAN "$here/$t.c" \
        "$B/libctnas-fuzz.a" $pclibs -o "$B/$t"
done

[ "$secs" -eq 0 ] && { echo "built: $(for t in $targets; do printf '%s ' "$B/$t"; done)"; exit 0; }

status=0
for t in $targets; do
    mkdir -p "$B/corpus/$t" "$B/artifacts/$t"
    cp -n "$here/corpus/$t/"* "$B/corpus/$t/" 2>/dev/null || true
    log=$B/$t.log
    echo "== $t: ${secs}s over $B/corpus/$t (log $log)"
    rc=0
    ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0} \
    UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
        "$B/$t" -max_len=4096 -max_total_time="$secs" -timeout=25 \
        -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$B/artifacts/$t/" ${FUZZ_FLAGS:-} \
        "$B/corpus/$t" > "$log" 2>&1 || rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    units=$(ls "$B/corpus/$t" | wc -l)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
    corp=$(grep -o 'corp: [0-9]*/[0-9]*[a-zA-Z]*' "$log" | tail -1 | sed 's/corp: //')
    if [ "$rc" -eq 0 ]; then
        echo "$t: clean; ${execs:-?} runs, ${eps:-?} exec/s, corpus ${corp:-?} (libFuzzer: inputs/bytes; $units files in the directory), $cov"
    else
        status=1
        echo "$t: FAILED (exit $rc); ${execs:-?} runs, ${eps:-?} exec/s, corpus $units files"
        grep -E '^(==[0-9]+==ERROR|SUMMARY|.*runtime error|.*invariant broken|artifact_prefix|Test unit written)' "$log" | head -20
    fi
done
exit $status
