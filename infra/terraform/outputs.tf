output "bucket" {
  description = "Bucket name: set XFER_BUCKET and use s3://<bucket>/dvc as the DVC remote."
  value       = aws_s3_bucket.xfer.bucket
}

output "bucket_arn" {
  value = aws_s3_bucket.xfer.arn
}

output "pipeline_policy_arn" {
  description = "Attach to the role of the workers / MLflow server (IRSA, instance profile or a user)."
  value       = aws_iam_policy.pipeline.arn
}
