-- One server, one database per service (run once, on an empty data volume).
CREATE DATABASE mlflow OWNER xfer;
CREATE DATABASE prefect OWNER xfer;
