"""The scheduled backup as a Cloud Workflows definition, built as data and serialized as YAML.

One execution exports every service database (Cloud SQL Admin API), one at a time because
the Admin API runs one operation per instance, then the Memorystore instance, each to a new
object named by the execution's UTC timestamp and id (the bucket has a retention policy and
no versioning, so a name is never reused). Every long-running operation is polled until it
is done; a failed or stuck operation raises, which fails the execution visibly: starting an
export is not counted as a backup.
"""

from __future__ import annotations

from typing import Any

import yaml

SQL_API = "https://sqladmin.googleapis.com/v1"
REDIS_API = "https://redis.googleapis.com/v1"
POLL_SECONDS = 20
MAX_POLLS = 540  # 3 hours per operation
RETRY = "${http.default_retry}"


def definition(
    *,
    sql_instance: str,
    databases: list[str],
    redis_instance: str,
    redis_region: str,
    bucket: str,
) -> dict[str, Any]:
    """The workflow as a mapping: ``main`` plus the export and polling subworkflows."""
    return {
        "main": {"steps": _main(sql_instance, databases, redis_instance, redis_region, bucket)},
        "export_sql": _export_sql(),
        "export_redis": _export_redis(),
        "wait_sql": _wait(
            label="Cloud SQL",
            url='${"' + SQL_API + '/projects/" + project + "/operations/" + name}',
            done='${operation.body.status == "DONE"}',
        ),
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


def _main(
    sql_instance: str, databases: list[str], redis_instance: str, redis_region: str, bucket: str
) -> list[dict[str, Any]]:
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
                    {"sql_instance": sql_instance},
                    {"databases": list(databases)},
                    {"redis_instance": redis_instance},
                    {"redis_region": redis_region},
                    {"exported": []},
                ]
            }
        },
        {
            "export_databases": {
                "for": {
                    "value": "database",
                    "in": "${databases}",
                    "steps": [
                        {
                            "export_database": {
                                "call": "export_sql",
                                "args": {
                                    "project": "${project}",
                                    "instance": "${sql_instance}",
                                    "database": "${database}",
                                    "uri": (
                                        '${"gs://" + bucket + "/postgres/" + database + "/"'
                                        ' + suffix + ".sql.gz"}'
                                    ),
                                },
                                "result": "uri",
                            }
                        },
                        {
                            "record_database": {
                                "assign": [{"exported": "${list.concat(exported, uri)}"}]
                            }
                        },
                    ],
                }
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
        {"finish": {"return": {"objects": "${list.concat(exported, redis_uri)}"}}},
    ]


def _auth() -> dict[str, str]:
    """A fresh mapping each time, so the YAML has no anchors (Workflows does not read them)."""
    return {"type": "OAuth2"}


def _export_sql() -> dict[str, Any]:
    url = '${"' + SQL_API + '/projects/" + project + "/instances/" + instance + "/export"}'
    return {
        "params": ["project", "instance", "database", "uri"],
        "steps": [
            {
                "start": {
                    "call": "http.post",
                    "args": {
                        "url": url,
                        "auth": _auth(),
                        "body": {
                            "exportContext": {
                                "fileType": "SQL",
                                "uri": "${uri}",
                                "databases": ["${database}"],
                            }
                        },
                    },
                    "result": "operation",
                }
            },
            {
                "wait": {
                    "call": "wait_sql",
                    "args": {"project": "${project}", "name": "${operation.body.name}"},
                }
            },
            {"done": {"return": "${uri}"}},
        ],
    }


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
