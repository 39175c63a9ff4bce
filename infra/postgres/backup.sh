#!/bin/sh
# One logical backup of the MLflow and Prefect databases (compose service `pg-backup` runs it
# every XFER_BACKUP_INTERVAL_S, default daily). Each database is dumped by its own role (the owner
# may dump what it owns) in pg_dump's custom format, so `pg_restore` restores a whole database or
# one table. Dumps older than XFER_BACKUP_KEEP_DAYS are deleted. Restore drill: infra/README.md.
set -eu
: "${MLFLOW_DB_PASSWORD:?}" "${PREFECT_DB_PASSWORD:?}"
out=${XFER_BACKUP_DIR:-/backups}
keep=${XFER_BACKUP_KEEP_DAYS:-14}
stamp=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$out"
PGPASSWORD=$MLFLOW_DB_PASSWORD pg_dump -h postgres -U mlflow -d mlflow -Fc -f "$out/mlflow-$stamp.dump.tmp"
PGPASSWORD=$PREFECT_DB_PASSWORD pg_dump -h postgres -U prefect -d prefect -Fc -f "$out/prefect-$stamp.dump.tmp"
for f in "$out"/*-"$stamp".dump.tmp; do
  pg_restore --list "$f" > /dev/null  # a dump pg_restore cannot read fails this run loudly
  mv "$f" "${f%.tmp}"
done
find "$out" -name '*.dump' -mtime +"$keep" -delete
touch "$out/.last-success"  # the service's healthcheck: a success within the last 26 hours
echo "backup $stamp done"
