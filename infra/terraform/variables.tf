variable "region" {
  description = "AWS region of the bucket."
  type        = string
  default     = "eu-west-1"
}

variable "bucket_name" {
  description = "Globally unique bucket for DVC data, monitoring logs and MLflow artifacts."
  type        = string
}

variable "kms_key_arn" {
  description = "KMS key for SSE-KMS; empty = SSE-S3 (AES256)."
  type        = string
  default     = ""
}

variable "noncurrent_version_days" {
  description = "Days to keep overwritten/deleted object versions (rollback window)."
  type        = number
  default     = 90
}

variable "prefixes" {
  description = "Key prefixes the pipeline may touch (DVC remote, monitoring log, MLflow artifacts)."
  type        = list(string)
  default     = ["dvc/", "monitoring/", "mlflow/", "references/", "reports/"]
}
