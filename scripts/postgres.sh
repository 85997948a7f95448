#!/usr/bin/env bash
# A local PostgreSQL for the shared-store tests (the stores' tests on both backends and the
# two-replica test, tests/batches/test_replicas.py): Debian's packages, the default cluster
# on 127.0.0.1:5432, a `wrapserve` role and database. Needs root (apt-get, the postgres
# user). Prints the database URL.
set -euo pipefail
if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
version="$(ls /usr/lib/postgresql | sort -n | tail -1)"
if ! pg_lsclusters -h | grep -q "^$version main"; then
  pg_createcluster "$version" main >/dev/null
fi
pg_ctlcluster "$version" main start >/dev/null 2>&1 || true
for _ in $(seq 1 60); do
  su postgres -c "pg_isready -q -h 127.0.0.1 -p 5432" && break
  sleep 0.5
done
su postgres -c "psql -q -tAc \"SELECT 1 FROM pg_roles WHERE rolname = 'wrapserve'\"" | grep -q 1 \
  || su postgres -c "psql -q -c \"CREATE ROLE wrapserve LOGIN PASSWORD 'wrapserve' CREATEDB\"" >&2
su postgres -c "psql -q -tAc \"SELECT 1 FROM pg_database WHERE datname = 'wrapserve'\"" | grep -q 1 \
  || su postgres -c "createdb -O wrapserve wrapserve" >&2
echo "postgresql://wrapserve:wrapserve@127.0.0.1:5432/wrapserve"
