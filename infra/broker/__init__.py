"""Operations on a running RabbitMQ broker that boot-time definitions cannot do (removal)."""
