# shellcheck shell=bash
# Sourced by .ci/run (set -euo pipefail, root, CI=true): a throwaway PostgreSQL cluster on a free
# loopback port for the `study` storage tests. Exports MDF_TEST_POSTGRES_URL. Idempotent: installs
# Debian's postgresql only when missing; the cluster lives in a fresh temporary folder and is
# stopped when the calling shell exits.
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  echo "services-postgres: installing Debian's postgresql"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
_mdf_pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
_mdf_pgdir=$(mktemp -d /tmp/mdf-pg.XXXXXX)
chown postgres: "$_mdf_pgdir"
_mdf_pgport=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
runuser -u postgres -- "$_mdf_pgbin/initdb" -D "$_mdf_pgdir/data" -A trust -U postgres >/dev/null
runuser -u postgres -- "$_mdf_pgbin/pg_ctl" -D "$_mdf_pgdir/data" -l "$_mdf_pgdir/server.log" -w \
  -o "-p $_mdf_pgport -k $_mdf_pgdir -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null
runuser -u postgres -- "$_mdf_pgbin/createdb" -h 127.0.0.1 -p "$_mdf_pgport" mdf_study_test
export MDF_TEST_POSTGRES_URL="postgresql://postgres@127.0.0.1:$_mdf_pgport/mdf_study_test"
if [ -z "$(trap -p EXIT)" ]; then
  # shellcheck disable=SC2064
  trap "runuser -u postgres -- '$_mdf_pgbin/pg_ctl' -D '$_mdf_pgdir/data' -m fast stop >/dev/null 2>&1 || true" EXIT
fi
echo "services-postgres: PostgreSQL on 127.0.0.1:$_mdf_pgport (MDF_TEST_POSTGRES_URL)"
