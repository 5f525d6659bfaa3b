-- sum_bed_days_by_region
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
    LEAST(GREATEST(CASE WHEN g."los_days" IS NULL THEN 0 ELSE g."los_days" END, 0), 60) AS v
  FROM "lpr" AS g
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
    rows_ranked.rn <= 10
), persons_ranked AS (
  SELECT
    *,
    ROW_NUMBER() OVER (PARTITION BY p."person_id" ORDER BY p."row_key") AS prn
  FROM "cpr" AS p
), persons AS (
  SELECT
    *
  FROM persons_ranked
  WHERE
    persons_ranked.prn = 1
), joined AS (
  SELECT
    rows_bounded.*,
    p."region" AS g0
  FROM rows_bounded
  JOIN "persons" AS p
    ON p."person_id" = rows_bounded.pid
), agg AS (
  SELECT
    joined.g0,
    CAST(SUM(CAST(joined.v AS BIGINT)) AS BIGINT) AS s
  FROM joined
  GROUP BY
    joined.g0
)
SELECT
  k0.key AS g0,
  COALESCE(agg.s, 0) AS s
FROM k0
LEFT JOIN agg
  ON agg.g0 = k0.key
ORDER BY
  k0.ord
