#!/bin/bash
# One object from many hosts under Slurm: plan once, an array of workers, a finishing job.
# The file must be readable at the same path on every node (Lustre, CephFS, NFS, GPFS).
#   bash examples/slurm/upload-object.sh /lustre/dumps/db.dump s3://backups/db/db.dump 16
set -euo pipefail
file=$1 url=$2 workers=${3:-16}
here=$(cd "$(dirname "$0")" && pwd)
# Begins the multipart upload and writes its plan beside the key; run again, it finds the plan.
partwise plan "$file" "$url" --workers "$workers" --part-size 256MiB
# --requeue: a node failure puts a task back; a rerun of a task resumes its range.
array=$(sbatch --parsable --requeue --array=0-$((workers - 1)) "$here/worker.sbatch" "$file" "$url")
# afterany, not afterok: afterok never fires once a task failed, even if its requeue succeeds.
sbatch --dependency=afterany:"$array" "$here/finish.sbatch" "$url"
