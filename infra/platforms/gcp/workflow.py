"""The scheduled Memorystore export as a Cloud Workflows definition, built as data, as YAML.

The service databases are backed up (and verified) by the backup job (``backup_job``);
Memorystore refuses the replication protocol that job's Redis backup uses, so its RDB export
goes through the Memorystore Admin API here, and only here. One execution exports the instance
to a new object named by the execution's UTC timestamp and id (the bucket has a retention
policy and no versioning, so a name is never reused). The long-running operation is polled
until it is done; a failed or stuck operation raises, which fails the execution visibly:
starting an export is not counted as a backup.
"""

from __future__ import annotations

from typing import Any

import yaml

REDIS_API = "https://redis.googleapis.com/v1"
POLL_SECONDS = 20
MAX_POLLS = 540  # 3 hours per operation
RETRY = "${http.default_retry}"


def definition(*, redis_instance: str, redis_region: str, bucket: str) -> dict[str, Any]:
    """The workflow as a mapping: ``main`` plus the export and polling subworkflows."""
    return {
        "main": {"steps": _main(redis_instance, redis_region, bucket)},
        "export_redis": _export_redis(),
        "wait_redis": _wait(
            label="Memorystore",
            url='${"' + REDIS_API + '/" + name}',
            done='${map.get(operation.body, "done") == true}',
        ),
    }


def source(**kwargs: Any) -> str:
    """The definition as YAML text, the form the Workflows API stores."""
    return yaml.safe_dump(
        definition(**kwargs), sort_keys=False, default_flow_style=False, width=1000
    )


def _main(redis_instance: str, redis_region: str, bucket: str) -> list[dict[str, Any]]:
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
                    {"suffix": '${stamp + "-" + execution}'},
                    {"bucket": bucket},
                    {"redis_instance": redis_instance},
                    {"redis_region": redis_region},
                ]
            }
        },
        {
            "export_redis": {
                "call": "export_redis",
                "args": {
                    "project": "${project}",
                    "region": "${redis_region}",
                    "instance": "${redis_instance}",
                    "uri": '${"gs://" + bucket + "/redis/" + suffix + ".rdb"}',
                },
                "result": "redis_uri",
            }
        },
        {"finish": {"return": {"objects": ["${redis_uri}"]}}},
    ]


def _auth() -> dict[str, str]:
    """A fresh mapping each time, so the YAML has no anchors (Workflows does not read them)."""
    return {"type": "OAuth2"}


def _export_redis() -> dict[str, Any]:
    url = (
        '${"' + REDIS_API + '/projects/" + project + "/locations/" + region'
        ' + "/instances/" + instance + ":export"}'
    )
    return {
        "params": ["project", "region", "instance", "uri"],
        "steps": [
            {
                "start": {
                    "call": "http.post",
                    "args": {
                        "url": url,
                        "auth": _auth(),
                        "body": {"outputConfig": {"gcsDestination": {"uri": "${uri}"}}},
                    },
                    "result": "operation",
                }
            },
            {
                "wait": {
                    "call": "wait_redis",
                    "args": {"project": "${project}", "name": "${operation.body.name}"},
                }
            },
            {"done": {"return": "${uri}"}},
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
