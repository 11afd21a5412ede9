#!/usr/bin/env bash
# Prints the path of tcmalloc (Debian's libtcmalloc-minimal4) for LD_PRELOAD, or nothing.
# Called by the Makefile's recipes when they run, so a library installed by the same make
# invocation is found.
for lib in /usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 \
           /usr/lib/aarch64-linux-gnu/libtcmalloc_minimal.so.4; do
    [ -e "$lib" ] && { printf '%s' "$lib"; exit 0; }
done
path=$(ldconfig -p 2>/dev/null | awk '/libtcmalloc_minimal\.so\.4 /{print $NF; exit}')
printf '%s' "$path"
