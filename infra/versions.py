"""Server versions the platform is built and tested against, each written down once.

Templates, the config model's default images and the rendered definitions take them from here,
so moving to another release is one edit (and the tests say what else it breaks).
"""

from __future__ import annotations

# The dev image's RabbitMQ, and the version the rendered definitions document declares.
RABBITMQ_VERSION = "3.13.7"
# The oldest RabbitMQ the rendered files must boot: Debian 12's rabbitmq-server, which the
# integration and end-to-end tests run. A rabbitmq.conf key it does not know stops the node.
RABBITMQ_OLDEST_VERSION = "3.10"
