DROP TABLE generation_parts;
