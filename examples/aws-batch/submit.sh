#!/bin/bash
# One object from many AWS Batch array children: plan here, an array job of workers, a finishing
# job that depends on the whole array. Uses the job definition in job-definition.json (register it
# once: aws batch register-job-definition --cli-input-json file://examples/aws-batch/job-definition.json).
#   bash examples/aws-batch/submit.sh /mnt/efs/dumps/db.dump s3://backups/db/db.dump 16 my-queue
set -euo pipefail
file=$1 url=$2 workers=$3 queue=$4
partwise plan "$file" "$url" --workers "$workers" --part-size 256MiB
# Each child gets AWS_BATCH_JOB_ARRAY_INDEX (--worker auto; N comes from the plan). A child retried
# by Batch's retry strategy resumes its range.
array=$(aws batch submit-job --job-name partwise-workers --job-queue "$queue" --job-definition partwise \
  --array-properties size="$workers" --retry-strategy attempts=3 \
  --container-overrides "command=[\"partwise\",\"upload\",\"$file\",\"$url\",\"--worker\",\"auto\",\"--json\"]" \
  --query jobId --output text)
# A dependency on the array job waits for every child, failed ones included.
aws batch submit-job --job-name partwise-finish --job-queue "$queue" --job-definition partwise \
  --depends-on jobId="$array" \
  --container-overrides "command=[\"sh\",\"-c\",\"for i in \$(seq 60); do partwise finish $url --json && exit 0; rc=\$?; [ \$rc -ne 6 ] && exit \$rc; sleep 30; done; exit 6\"]"
