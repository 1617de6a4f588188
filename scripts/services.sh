#!/usr/bin/env bash
# Make sure PostgreSQL (127.0.0.1:5432, database `test`) and Redis (127.0.0.1:6379) are running,
# and that Chromium is installed for the dashboard tests,
# installing them from Debian's packages when they are missing. The tests use both for real.
set -euo pipefail

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_ready=0
apt_install() {
  if [ "$apt_ready" = 0 ]; then as_root apt-get update -qq; apt_ready=1; fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    echo "== installing PostgreSQL"
    apt_install postgresql
  fi
  echo "== starting PostgreSQL"
  version=$(ls /etc/postgresql | sort -V | tail -n1)
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
pg_isready -h 127.0.0.1 -p 5432
# The tests connect as `postgres` over TCP without a password (trust) and need a `test` database.
if ! psql -h 127.0.0.1 -U postgres -d test -tAc 'select 1' >/dev/null 2>&1; then
  if ! psql -h 127.0.0.1 -U postgres -d postgres -tAc 'select 1' >/dev/null 2>&1; then
    echo "== allowing local trust logins for the tests"
    hba=$(ls /etc/postgresql/*/main/pg_hba.conf | head -n1)
    as_root sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
    as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n1)" main reload
  fi
  psql -h 127.0.0.1 -U postgres -d postgres -tAc 'CREATE DATABASE test' >/dev/null
fi

if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  if ! command -v redis-server >/dev/null; then
    echo "== installing Redis"
    apt_install redis-server
  fi
  echo "== starting Redis"
  as_root mkdir -p /var/lib/redis /var/log/redis
  as_root redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  for _ in $(seq 1 30); do redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 && break; sleep 1; done
fi
echo "redis: $(redis-cli -h 127.0.0.1 -p 6379 ping)"

# Not a service, but a system package the tests drive: Debian's Chromium for the dashboard tests.
if ! command -v chromium >/dev/null 2>&1; then
  echo "== installing Chromium (dashboard tests)"
  apt_install chromium
fi
echo "chromium: $(chromium --version 2>/dev/null | head -n1)"

# Debian's docker-compose (1.29) resolves docker-compose.yml offline, with no Docker engine: the
# deployment tests compare its reading of the file with their own.
if ! command -v docker-compose >/dev/null 2>&1; then
  echo "== installing docker-compose (deployment tests)"
  apt_install docker-compose
fi
