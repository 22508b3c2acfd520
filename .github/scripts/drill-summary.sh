#!/usr/bin/env bash
# The DR drill's JSON report (python -m infra dr-drill) as a Markdown table: RTO and RPO per
# service, for the job summary. Usage: drill-summary.sh STACK REPORT.json
set -euo pipefail
stack=${1:?usage: drill-summary.sh STACK REPORT.json}
report=${2:?usage: drill-summary.sh STACK REPORT.json}
if ! jq -e . "$report" >/dev/null 2>&1; then
  echo "### DR drill ($stack): no report (the drill stopped before it could write one)"
  exit 0
fi
jq -r --arg stack "$stack" '
  "### DR drill (\($stack)): " + (if .ok then "every service restored" else "FAILED" end),
  "",
  "| service | result | RTO (s) | RPO (s) | backup |",
  "| --- | --- | --- | --- | --- |",
  (.services | to_entries[] | "| \(.key) | \(if .value.ok then "ok" else "failed: \(.value.error)" end) | \(.value.recovery_time_s // "-") | \(.value.recovery_point_s // "-") | \(.value.backup_id // "-") |"),
  "",
  "converge \(.converge_s)s, total \(.total_s)s"' "$report"
