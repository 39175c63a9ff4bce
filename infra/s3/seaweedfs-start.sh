#!/bin/sh
# Entrypoint of the compose `s3` service (SeaweedFS: master + volume + filer + S3 gateway in one
# process). Writes the S3 identities from the environment, then starts the server with them, so
# the S3 API never runs unauthenticated (SeaweedFS allows anonymous access when it has no
# identities at all).
#
#   admin   Admin on everything: used only by the one-shot `s3-init` (bucket, versioning)
#   workers Read/Write/List/Tagging on $XFER_BUCKET only: Prefect workers (DVC remote, monitoring log)
#   mlflow  Read/Write/List on $XFER_BUCKET only: the MLflow server (proxied artifacts)
#
# Keys must not contain `"` or `\` (they are written into JSON): use `openssl rand -hex 32`.
set -eu
: "${S3_ADMIN_ACCESS_KEY:?}" "${S3_ADMIN_SECRET_KEY:?}" "${S3_WORKER_ACCESS_KEY:?}"
: "${S3_WORKER_SECRET_KEY:?}" "${S3_MLFLOW_ACCESS_KEY:?}" "${S3_MLFLOW_SECRET_KEY:?}"
b=${XFER_BUCKET:?}
for v in "$S3_ADMIN_ACCESS_KEY" "$S3_ADMIN_SECRET_KEY" "$S3_WORKER_ACCESS_KEY" \
         "$S3_WORKER_SECRET_KEY" "$S3_MLFLOW_ACCESS_KEY" "$S3_MLFLOW_SECRET_KEY"; do
  case "$v" in *'"'* | *'\'*) echo "S3 keys must not contain \" or \\" >&2; exit 2 ;; esac
done

umask 077
cat > /tmp/s3.json <<JSON
{"identities": [
  {"name": "admin",
   "credentials": [{"accessKey": "$S3_ADMIN_ACCESS_KEY", "secretKey": "$S3_ADMIN_SECRET_KEY"}],
   "actions": ["Admin", "Read", "Write", "List", "Tagging"]},
  {"name": "workers",
   "credentials": [{"accessKey": "$S3_WORKER_ACCESS_KEY", "secretKey": "$S3_WORKER_SECRET_KEY"}],
   "actions": ["Read:$b", "Write:$b", "List:$b", "Tagging:$b"]},
  {"name": "mlflow",
   "credentials": [{"accessKey": "$S3_MLFLOW_ACCESS_KEY", "secretKey": "$S3_MLFLOW_SECRET_KEY"}],
   "actions": ["Read:$b", "Write:$b", "List:$b"]}
]}
JSON
exec weed server -dir=/data -ip.bind=0.0.0.0 -master.volumeSizeLimitMB=1024 \
  -s3 -s3.port=8333 -s3.config=/tmp/s3.json
