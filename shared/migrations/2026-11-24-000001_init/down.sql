DROP TABLE webhook_deliveries;
DROP TABLE webhook_endpoints;
DROP TABLE voices;
DROP TABLE usage_events;
DROP TABLE generations;
DROP TABLE api_keys;
DROP TABLE workspaces;
