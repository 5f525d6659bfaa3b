-- count_persons_by_region
-- dialect: duckdb
-- params: []
WITH k0 AS (
  SELECT
    key,
    ord
  FROM (VALUES
    ('Hovedstaden', 0),
    ('Sjælland', 1),
    ('Syddanmark', 2),
    ('Midtjylland', 3),
    ('Nordjylland', 4)) AS k0(key, ord)
), src AS (
  SELECT
    g."person_id" AS pid,
    g."row_key" AS rk,
    g."region" AS g0
  FROM "cpr" AS g
), agg AS (
  SELECT
    src.g0,
    COUNT(*) AS n
  FROM src
  GROUP BY
    src.g0
)
SELECT
  k0.key AS g0,
  COALESCE(agg.n, 0) AS n
FROM k0
LEFT JOIN agg
  ON agg.g0 = k0.key
ORDER BY
  k0.ord
