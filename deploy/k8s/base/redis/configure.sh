#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Prepares one pod of the redis StatefulSet (redis.yaml): a Redis server and a sentinel.
#   configure.sh SOURCE_DIR PASSWORDS_DIR OUT_DIR
# SOURCE_DIR holds users.acl, replication.acl, sentinel.acl and render-acl.sh (the redis-acl
# ConfigMap); PASSWORDS_DIR a file per user (the Secret zgserve-redis-users); OUT_DIR gets
#   users.acl      the servers' users (users.acl, then replication.acl)
#   redis.conf     this server's replication: its login to the primary, the name it is known
#                  by, and `replicaof` unless it is the primary
#   sentinel.conf  the sentinel's users (sentinel.acl), its login to its peers and servers,
#                  and what it watches: ZG_REDIS_MASTER_NAME, quorum ZG_REDIS_QUORUM
# Environment: ZG_REDIS_ME (this pod's name, redis-N.redis), ZG_REDIS_SERVERS (every pod's,
# space-separated; the first is the primary of a new group), ZG_REDIS_MASTER_NAME,
# ZG_REDIS_QUORUM, ZG_REDIS_DOWN_AFTER_MS.
# The primary is whatever the sentinels of the other pods say it is (a failover may have
# moved it; a restarted primary comes back as a replica); when none answers (the group's first
# start, or all of it restarted) it is the first server. POSIX sh and busybox: runs in
# redis:alpine; tests/unit/deploy/test_k8s_redis_sentinel.py runs it as three pods.
set -eu
src=$1
passwords=$2
out=$3
password() { cat "$passwords/$1"; }

sh "$src/render-acl.sh" "$src/users.acl" "$passwords" > "$out/users.acl"
sh "$src/render-acl.sh" "$src/replication.acl" "$passwords" >> "$out/users.acl"

primary=""
for peer in $ZG_REDIS_SERVERS; do
  [ "$peer" = "$ZG_REDIS_ME" ] && continue
  answer=$(timeout 3 redis-cli --no-auth-warning -h "$peer" -p 26379 --user sentinel-client \
    --pass "$(password sentinel-client)" sentinel get-master-addr-by-name "$ZG_REDIS_MASTER_NAME" \
    2>/dev/null | head -n 1) || answer=""
  case $answer in
    '' | *[!A-Za-z0-9.-]*) ;;  # no sentinel there yet, or an error: ask the next
    *) primary=$answer; break ;;
  esac
done
if [ -z "$primary" ]; then
  set -- $ZG_REDIS_SERVERS
  primary=$1
fi
echo "configure: $ZG_REDIS_ME starts with $primary as the primary" >&2

{
  echo "protected-mode no"  # the default user is off and every user has a password
  echo "replica-announce-ip $ZG_REDIS_ME"
  echo "masteruser replica"
  echo "masterauth $(password replica)"
  if [ "$primary" != "$ZG_REDIS_ME" ]; then
    echo "replicaof $primary 6379"
  fi
} > "$out/redis.conf"

{
  echo "port 26379"
  echo "protected-mode no"  # the default user is off and every user has a password
  echo "dir $out"
  echo "sentinel resolve-hostnames yes"
  echo "sentinel announce-hostnames yes"
  echo "sentinel announce-ip $ZG_REDIS_ME"
  sh "$src/render-acl.sh" "$src/sentinel.acl" "$passwords"
  echo "sentinel sentinel-user sentinel"
  echo "sentinel sentinel-pass $(password sentinel)"
  echo "sentinel monitor $ZG_REDIS_MASTER_NAME $primary 6379 $ZG_REDIS_QUORUM"
  echo "sentinel auth-user $ZG_REDIS_MASTER_NAME sentinel"
  echo "sentinel auth-pass $ZG_REDIS_MASTER_NAME $(password sentinel)"
  echo "sentinel down-after-milliseconds $ZG_REDIS_MASTER_NAME $ZG_REDIS_DOWN_AFTER_MS"
  echo "sentinel failover-timeout $ZG_REDIS_MASTER_NAME 60000"
  echo "sentinel parallel-syncs $ZG_REDIS_MASTER_NAME 1"
} > "$out/sentinel.conf"
chmod 0600 "$out/redis.conf" "$out/sentinel.conf"
