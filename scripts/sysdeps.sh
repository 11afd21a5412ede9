#!/usr/bin/env bash
# Debian packages optbench's demo and tests use: real Fashion-MNIST files, tcmalloc, chromium
# (the HTML report is opened in a headless browser by the tests), prometheus (a real server
# scrapes optbench's /metrics in a test) and hey (the serving load benchmark).
# Installs them when running as root with apt-get; otherwise says what to install.
set -euo pipefail
need=()
[ -d /usr/share/datasets/fashion-mnist ] || need+=(dataset-fashion-mnist)
ldconfig -p 2>/dev/null | grep -q libtcmalloc_minimal.so.4 || need+=(libtcmalloc-minimal4)
command -v chromium >/dev/null || need+=(chromium)
command -v prometheus >/dev/null || need+=(prometheus)
command -v hey >/dev/null || need+=(hey)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
else
    echo "optbench: optional system packages missing: ${need[*]}" >&2
    echo "  install them with: sudo apt-get install -y ${need[*]}" >&2
    echo "  (or point OPTBENCH_DATA_DIR at a folder holding Fashion-MNIST's idx files)" >&2
fi
