#!/usr/bin/env bash
# The DR drill's JSON report (python -m infra dr-drill) as a Markdown table: RTO and RPO per
# service's PostgreSQL database, then for the Redis keys and the RabbitMQ definitions (or why
# they were not drilled: no scratch server given), for the job summary.
# Usage: drill-summary.sh STACK REPORT.json
set -euo pipefail
stack=${1:?usage: drill-summary.sh STACK REPORT.json}
report=${2:?usage: drill-summary.sh STACK REPORT.json}
if ! jq -e . "$report" >/dev/null 2>&1; then
  echo "### DR drill ($stack): no report (the drill stopped before it could write one)"
  exit 0
fi
jq -r --arg stack "$stack" '
  # a Redis or RabbitMQ part: skipped, ok, or what failed (its own error, else those of its items)
  def part(name; items):
    if . == null then "| \(name) | not in this report | - | - | - |"
    elif .skipped then "| \(name) | not drilled: \(.skipped) | - | - | - |"
    else "| \(name) | \(if .ok then "ok" else "failed: \(.error // ([(.[items] // {}) | to_entries[] | select(.value.ok | not) | "\(.key): \(.value.error)"] | join("; ")))" end) | \(.recovery_time_s // "-") | \(.recovery_point_s // "-") | \(.backup_id // "-") |"
    end;
  "### DR drill (\($stack)): " + (if .ok then "everything drilled was restored" else "FAILED" end),
  "",
  "| service | result | RTO (s) | RPO (s) | backup |",
  "| --- | --- | --- | --- | --- |",
  (.services | to_entries[] | "| \(.key) | \(if .value.ok then "ok" else "failed: \(.value.error)" end) | \(.value.recovery_time_s // "-") | \(.value.recovery_point_s // "-") | \(.value.backup_id // "-") |"),
  (.redis | part("redis keys"; "services")),
  (.rabbitmq | part("rabbitmq definitions"; "vhosts")),
  "",
  "converge \(.converge_s)s, total \(.total_s)s"' "$report"
