#!/bin/sh
# Regenerates the LZO1X test vectors in internal/lzo/testdata/ by calling the
# real liblzo2 (lzo1x_1_compress and lzo1x_999_compress).
# Needs a C compiler and liblzo2 headers: apt-get install -y gcc liblzo2-dev
set -eu
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cc -std=c99 -O2 -Wall -Wextra -o "$tmp/mkvectors" "$here/mkvectors.c" -llzo2
"$tmp/mkvectors" "$here/.."
