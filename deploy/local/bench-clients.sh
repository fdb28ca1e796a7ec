#!/usr/bin/env bash
# Runs `dbq bench clients` (release build) and, in the same run on the same servers, the
# tools people compare with: redis-benchmark (-c 1, unpipelined and -P 16), psql \copy
# of the same table, and `aws s3 cp -` of a 256 MiB stream. Prints both side by side.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
prepare_bench
RUNS="${RUNS:-3}"
ROWS="${ROWS:-2000000}"

say "== dbq =="
"$DBQ" bench clients --runs "$RUNS" --copy-rows "$ROWS" --s3-url "s3://$DBQ_S3_BUCKET/dbq-bench"

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
now() { date +%s.%N; }

echo "== peers, same servers, same run =="
for p in 1 16; do
  rates=$(for _ in $(seq "$RUNS"); do
    redis-benchmark -h 127.0.0.1 -p "$DBQ_REDIS_PORT" -a "$DBQ_REDIS_PASSWORD" -c 1 -n 50000 -P "$p" -t set -q 2>/dev/null \
      | grep -oE '[0-9.]+ requests per second' | awk '{print $1}'
  done | median)
  printf 'redis-benchmark -c 1 -P %-3s %10.0f commands/s (SET)\n' "$p" "$rates"
done

export PGPASSWORD="$DBQ_PG_PASSWORD"
bytes=$(psql -h 127.0.0.1 -p "$DBQ_PG_PORT" -U postgres -d postgres -qAt -c "\\copy dbq_bench_copy to stdout" | wc -c)
rates=$(for _ in $(seq "$RUNS"); do
  t0=$(now); psql -h 127.0.0.1 -p "$DBQ_PG_PORT" -U postgres -d postgres -qAt -c "\\copy dbq_bench_copy to /dev/null"; t1=$(now)
  echo "$bytes $t0 $t1" | awk '{printf "%.1f\n", $1/1e6/($3-$2)}'
done | median)
printf 'psql \\copy to /dev/null     %10.1f MB/s\n' "$rates"

head -c $((256 << 20)) /dev/urandom > "$DBQ_DEV/bench-256m.bin"
rates=$(for _ in $(seq "$RUNS"); do
  t0=$(now); aws --endpoint-url "$DBQ_S3_ENDPOINT" s3 cp - "s3://$DBQ_S3_BUCKET/dbq-bench/aws.bin" --only-show-errors < "$DBQ_DEV/bench-256m.bin"; t1=$(now)
  echo "$t0 $t1" | awk -v b=$((256 << 20)) '{printf "%.1f\n", b/1e6/($2-$1)}'
done | median)
printf 'aws s3 cp - (256 MiB)        %10.1f MB/s\n' "$rates"
aws --endpoint-url "$DBQ_S3_ENDPOINT" s3 rm "s3://$DBQ_S3_BUCKET/dbq-bench/aws.bin" --only-show-errors || true
rm -f "$DBQ_DEV/bench-256m.bin"
