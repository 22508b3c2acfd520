"""The persistence platform: PostgreSQL, Redis and RabbitMQ for a fleet of services, as code."""
