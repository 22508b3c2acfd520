"""The scheduled Memorystore export as a Cloud Workflows definition, built as data, as YAML.

The service databases are backed up (and verified) by the backup job (``backup_job``);
Memorystore refuses the replication protocol that job's Redis backup uses, so its copy goes
through the Memorystore API here, and only here: an on-demand backup of the Valkey instance
(kept ``backup.retention_days`` in Memorystore's backup collection), then that backup exported
as RDB files into the stack's bucket, beside the databases' backups and under its retention
policy. Each execution names its backup by the execution's UTC timestamp and id, so a name is
never reused. Every long-running operation is polled until it is done; a failed or stuck one
raises, which fails the execution visibly: starting a backup is not counted as a backup.
"""

from __future__ import annotations

from typing import Any

import yaml

MEMORYSTORE_API = "https://memorystore.googleapis.com/v1"
POLL_SECONDS = 20
MAX_POLLS = 540  # 3 hours per operation
RETRY = "${http.default_retry}"


def definition(*, instance: str, region: str, bucket: str, retention_days: int) -> dict[str, Any]:
    """The workflow as a mapping: ``main`` plus the backup, export and polling subworkflows."""
    return {
        "main": {"steps": _main(instance, region, bucket, retention_days)},
        "backup_valkey": _backup_valkey(),
        "export_backup": _export_backup(),
        "wait_memorystore": _wait(
            label="Memorystore",
            url='${"' + MEMORYSTORE_API + '/" + name}',
            done='${map.get(operation.body, "done") == true}',
        ),
    }


def source(**kwargs: Any) -> str:
    """The definition as YAML text, the form the Workflows API stores."""
    return yaml.safe_dump(
        definition(**kwargs), sort_keys=False, default_flow_style=False, width=1000
    )


def _main(instance: str, region: str, bucket: str, retention_days: int) -> list[dict[str, Any]]:
    stamp = (
        "${text.replace_all(text.replace_all(text.substring(time.format(sys.now()), 0, 19),"
        ' ":", ""), "-", "")}'
    )
    return [
        {
            "init": {
                "assign": [
                    {"project": '${sys.get_env("GOOGLE_CLOUD_PROJECT_ID")}'},
                    {"execution": '${sys.get_env("GOOGLE_CLOUD_WORKFLOW_EXECUTION_ID")}'},
                    {"stamp": stamp},
                    # Backup ids take lowercase letters, digits and hyphens, a letter first.
                    {"backup_id": '${"valkey-" + text.to_lower(stamp + "-" + execution)}'},
                    {"bucket": bucket},
                    {"instance": instance},
                    {"region": region},
                    {"ttl": f"{retention_days * 86_400}s"},
                ]
            }
        },
        {
            "backup_valkey": {
                "call": "backup_valkey",
                "args": {
                    "project": "${project}",
                    "region": "${region}",
                    "instance": "${instance}",
                    "backup_id": "${backup_id}",
                    "ttl": "${ttl}",
                },
                "result": "backup",
            }
        },
        {
            "export_backup": {
                "call": "export_backup",
                "args": {"project": "${project}", "backup": "${backup}", "bucket": "${bucket}"},
                "result": "exported",
            }
        },
        {"finish": {"return": {"backup": "${backup}", "export": "${exported}"}}},
    ]


def _auth() -> dict[str, str]:
    """A fresh mapping each time, so the YAML has no anchors (Workflows does not read them)."""
    return {"type": "OAuth2"}


def _backup_valkey() -> dict[str, Any]:
    """Take an on-demand backup; return its resource name once the operation is done."""
    path = '"/projects/" + project + "/locations/" + region + "/instances/" + instance'
    url = '${"' + MEMORYSTORE_API + '" + ' + path + ' + ":backup"}'
    url_instance = '${"' + MEMORYSTORE_API + '" + ' + path + "}"
    return {
        "params": ["project", "region", "instance", "backup_id", "ttl"],
        "steps": [
            {
                "start": {
                    "call": "http.post",
                    "args": {
                        "url": url,
                        "auth": _auth(),
                        "body": {"backupId": "${backup_id}", "ttl": "${ttl}"},
                    },
                    "result": "operation",
                }
            },
            {
                "wait": {
                    "call": "wait_memorystore",
                    "args": {"project": "${project}", "name": "${operation.body.name}"},
                    "result": "done",
                }
            },
            # The backup's name is the instance's backup collection plus the id we chose.
            {
                "instance": {
                    "call": "http.get",
                    "args": {"url": url_instance, "auth": _auth()},
                    "result": "described",
                }
            },
            {
                "finished": {
                    "return": '${described.body.backupCollection + "/backups/" + backup_id}'
                }
            },
        ],
    }


def _export_backup() -> dict[str, Any]:
    """Export one backup's RDB files into the bucket; return the export's response."""
    return {
        "params": ["project", "backup", "bucket"],
        "steps": [
            {
                "start": {
                    "call": "http.post",
                    "args": {
                        "url": '${"' + MEMORYSTORE_API + '/" + backup + ":export"}',
                        "auth": _auth(),
                        "body": {"gcsBucket": "${bucket}"},
                    },
                    "result": "operation",
                }
            },
            {
                "wait": {
                    "call": "wait_memorystore",
                    "args": {"project": "${project}", "name": "${operation.body.name}"},
                    "result": "done",
                }
            },
            {"finished": {"return": '${map.get(done, "response")}'}},
        ],
    }


def _wait(*, label: str, url: str, done: str) -> dict[str, Any]:
    """Poll one long-running operation; raise if it failed or never finished."""
    failed = (
        '${"' + label + ' operation " + name + " failed: "'
        ' + json.encode_to_string(map.get(operation.body, "error"))}'
    )
    timed_out = (
        '${"' + label + ' operation " + name + " did not finish after " + string(polls) + " polls"}'
    )
    return {
        "params": ["project", "name"],
        "steps": [
            {"init": {"assign": [{"polls": 0}]}},
            {
                "poll": {
                    "try": {
                        "call": "http.get",
                        "args": {"url": url, "auth": _auth()},
                        "result": "operation",
                    },
                    "retry": RETRY,
                }
            },
            {
                "check": {
                    "switch": [
                        {
                            "condition": '${map.get(operation.body, "error") != null}',
                            "next": "failed",
                        },
                        {"condition": done, "next": "succeeded"},
                        {"condition": f"${{polls >= {MAX_POLLS}}}", "next": "timed_out"},
                    ]
                }
            },
            {"pause": {"call": "sys.sleep", "args": {"seconds": POLL_SECONDS}}},
            {"count": {"assign": [{"polls": "${polls + 1}"}], "next": "poll"}},
            {"failed": {"raise": failed}},
            {"timed_out": {"raise": timed_out}},
            {"succeeded": {"return": "${operation.body}"}},
        ],
    }
