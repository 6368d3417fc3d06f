DROP INDEX generations_unannounced;
