DROP INDEX usage_events_key_time;
