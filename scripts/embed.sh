#!/bin/sh
# embed.sh IN OUT: turns a text file (the Lua prelude) into a C header holding it as a string.
set -e
name=$(basename "$1" | sed 's/[^A-Za-z0-9]/_/g')
{
  echo "/* generated from $(basename "$1") by scripts/embed.sh */"
  echo "static const char nd_embed_${name}[] = {"
  od -An -v -tx1 "$1" | sed 's/ \([0-9a-f][0-9a-f]\)/0x\1,/g'
  echo "0x00 };"
} > "$2"
