ALTER TABLE webhook_deliveries DROP COLUMN leased_until;
