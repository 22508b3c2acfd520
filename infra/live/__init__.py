"""Per-service configuration applied to RUNNING servers through their admin interfaces.

Adding, changing or removing a service never replaces or restarts a server: the containers (and
the prod VM) boot from files that do not depend on the service list (``infra.render.boot_files``),
and these functions push each service's part (Redis ACL users, RabbitMQ vhosts and users,
pg_hba lines) to the live server. Each touches only what this tool manages.
"""
