-- Size of each table, TOAST table and index, per row and per million rows
-- (docs/SCALING.md). Run after fill.sql.
\set ON_ERROR_STOP 1
WITH rels AS (
    SELECT c.oid, c.relkind,
           coalesce(toasted.relname || ' (TOAST)', c.relname) AS relation,
           coalesce(i.indrelid, toasted.oid, c.oid) AS table_oid
    FROM pg_class c
    LEFT JOIN pg_index i ON i.indexrelid = c.oid
    LEFT JOIN pg_class toasted ON toasted.reltoastrelid = c.oid
    WHERE c.relkind IN ('r', 'i', 't')
      AND (c.relnamespace = 'public'::regnamespace OR toasted.relnamespace = 'public'::regnamespace)
)
SELECT r.relation,
       CASE r.relkind WHEN 'i' THEN 'index' WHEN 't' THEN 'toast' ELSE 'table' END AS kind,
       t.reltuples::bigint AS rows,
       pg_size_pretty(pg_relation_size(r.oid)) AS size,
       round(pg_relation_size(r.oid)::numeric / greatest(t.reltuples, 1)::numeric, 1) AS bytes_per_row,
       pg_size_pretty((pg_relation_size(r.oid)::numeric / greatest(t.reltuples, 1)::numeric * 1e6)::bigint)
           AS per_million_rows
FROM rels r JOIN pg_class t ON t.oid = r.table_oid
-- Tables of a handful of rows say nothing per million.
WHERE t.reltuples >= 1000
ORDER BY pg_relation_size(r.oid) DESC;

SELECT pg_size_pretty(pg_database_size(current_database())) AS database_size;
