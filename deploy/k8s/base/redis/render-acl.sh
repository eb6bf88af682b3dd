#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Renders the Redis ACL file from users.acl: drops comments and blank lines, and appends to each
# `user NAME on ...` line `#` and the SHA-256 of the password in PASSWORDS/NAME (the file's
# trailing newlines are not part of it). POSIX sh and busybox: it runs in redis:alpine.
#   render-acl.sh TEMPLATE PASSWORDS_DIR > users.rendered.acl
# zg_shared.redisacl renders the same in Python; a test checks both agree.
set -eu
set -f  # key patterns such as ~zg:* are words, not file globs
template=$1
passwords=$2
while IFS= read -r line || [ -n "$line" ]; do
  case $line in
    '' | '#'*) continue ;;
  esac
  # shellcheck disable=SC2086 # split the rule into words on purpose
  set -- $line
  if [ "$1" != user ] || [ $# -lt 3 ]; then
    echo "render-acl: not a 'user NAME on|off ...' line: $line" >&2
    exit 1
  fi
  if [ "$3" = on ]; then
    if [ ! -s "$passwords/$2" ]; then
      echo "render-acl: no password file $passwords/$2 for user $2" >&2
      exit 1
    fi
    hash=$(printf '%s' "$(cat "$passwords/$2")" | sha256sum | cut -d ' ' -f 1)
    line="$line #$hash"
  fi
  printf '%s\n' "$line"
done < "$template"
