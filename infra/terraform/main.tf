# The object store of xfer: versioned, private, encrypted, TLS-only; one IAM policy scoped to it.

resource "aws_s3_bucket" "xfer" {
  bucket = var.bucket_name
  tags = {
    project = "xfer"
  }
}

resource "aws_s3_bucket_ownership_controls" "xfer" {
  bucket = aws_s3_bucket.xfer.id
  rule {
    object_ownership = "BucketOwnerEnforced" # no ACLs: access is by IAM policy only
  }
}

resource "aws_s3_bucket_public_access_block" "xfer" {
  bucket                  = aws_s3_bucket.xfer.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "xfer" {
  bucket = aws_s3_bucket.xfer.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "xfer" {
  bucket = aws_s3_bucket.xfer.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = var.kms_key_arn == "" ? "AES256" : "aws:kms"
      kms_master_key_id = var.kms_key_arn == "" ? null : var.kms_key_arn
    }
    bucket_key_enabled = var.kms_key_arn != ""
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "xfer" {
  bucket     = aws_s3_bucket.xfer.id
  depends_on = [aws_s3_bucket_versioning.xfer]
  rule {
    id     = "expire-old-versions"
    status = "Enabled"
    filter {}
    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_version_days
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 7 # storage.upload_file uses multipart above 8 MiB
    }
  }
}

data "aws_iam_policy_document" "tls_only" {
  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      aws_s3_bucket.xfer.arn,
      "${aws_s3_bucket.xfer.arn}/*",
    ]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "xfer" {
  bucket     = aws_s3_bucket.xfer.id
  policy     = data.aws_iam_policy_document.tls_only.json
  depends_on = [aws_s3_bucket_public_access_block.xfer]
}

# What the pipeline (workers, MLflow server, DVC) needs, on this bucket and these prefixes only.
data "aws_iam_policy_document" "pipeline" {
  statement {
    sid       = "ListPipelinePrefixes"
    actions   = ["s3:ListBucket", "s3:GetBucketLocation", "s3:ListBucketMultipartUploads"]
    resources = [aws_s3_bucket.xfer.arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = concat([""], [for p in var.prefixes : "${p}*"])
    }
  }
  statement {
    sid = "ReadWritePipelineObjects"
    actions = [
      "s3:GetObject",
      "s3:GetObjectVersion",
      "s3:PutObject",
      "s3:DeleteObject",
      "s3:AbortMultipartUpload",
      "s3:ListMultipartUploadParts",
    ]
    resources = [for p in var.prefixes : "${aws_s3_bucket.xfer.arn}/${p}*"]
  }
  dynamic "statement" {
    for_each = var.kms_key_arn == "" ? [] : [var.kms_key_arn]
    content {
      sid       = "UseBucketKey"
      actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
      resources = [statement.value]
    }
  }
}

resource "aws_iam_policy" "pipeline" {
  name        = "xfer-pipeline-${var.bucket_name}"
  description = "xfer: read/write its own prefixes of s3://${var.bucket_name}"
  policy      = data.aws_iam_policy_document.pipeline.json
}
