CREATE TABLE orders (id bigserial PRIMARY KEY, item text NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
