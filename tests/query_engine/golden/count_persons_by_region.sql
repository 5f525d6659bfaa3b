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
), rows_ranked AS (
  SELECT
    *,
    ROW_NUMBER() OVER (PARTITION BY src.pid ORDER BY src.rk) AS rn
  FROM src
), rows_bounded AS (
  SELECT
    *
  FROM rows_ranked
  WHERE
    rows_ranked.rn <= 1
), agg AS (
  SELECT
    rows_bounded.g0,
    COUNT(*) AS n
  FROM rows_bounded
  GROUP BY
    rows_bounded.g0
)
SELECT
  k0.key AS g0,
  COALESCE(agg.n, 0) AS n
FROM k0
LEFT JOIN agg
  ON agg.g0 = k0.key
ORDER BY
  k0.ord
