DROP INDEX webhook_deliveries_endpoint_id;
DROP TABLE webhook_attempts;
