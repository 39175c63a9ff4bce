#!/bin/sh
# Run once by the postgres image on an empty data volume (/docker-entrypoint-initdb.d): one login
# role per service, each owning its own database and nothing else. The superuser (POSTGRES_USER,
# POSTGRES_PASSWORD) stays inside this container; MLflow, Prefect and the backup job never see it.
#
# Passwords come from the environment (compose makes each one required). psql's :'var' quoting
# makes them literals, so any character is safe.
set -eu
: "${MLFLOW_DB_PASSWORD:?set MLFLOW_DB_PASSWORD in infra/.env}"
: "${PREFECT_DB_PASSWORD:?set PREFECT_DB_PASSWORD in infra/.env}"

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v mlflow_pw="$MLFLOW_DB_PASSWORD" -v prefect_pw="$PREFECT_DB_PASSWORD" <<'SQL'
CREATE ROLE mlflow LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'mlflow_pw';
CREATE ROLE prefect LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'prefect_pw';
CREATE DATABASE mlflow OWNER mlflow;
CREATE DATABASE prefect OWNER prefect;
-- Nobody else may connect to a service's database (PUBLIC has CONNECT by default).
REVOKE ALL ON DATABASE mlflow FROM PUBLIC;
REVOKE ALL ON DATABASE prefect FROM PUBLIC;
SQL

# Each role owns its database's public schema. Prefect's migrations create pg_trgm, a trusted
# extension since PostgreSQL 13: the database owner may create it without superuser.
for db in mlflow prefect; do
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$db" \
    -c "ALTER SCHEMA public OWNER TO $db;"
done
