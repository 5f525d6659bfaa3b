-- mean_ddd_by_atc1
-- dialect: duckdb
-- params: []
WITH k0 AS (
  SELECT
    key,
    ord
  FROM (VALUES
    ('A', 0),
    ('C', 1),
    ('N', 2)) AS k0(key, ord)
), src AS (
  SELECT
    g."person_id" AS pid,
    g."row_key" AS rk,
    SUBSTRING(g."atc", 1, 1) AS g0,
    LEAST(
      GREATEST(CASE WHEN g."ddd" IS NULL OR ISNAN(g."ddd") THEN 0.0 ELSE g."ddd" END, 0.0),
      1000.0
    ) AS v
  FROM "lmdb" AS g
), kept AS (
  SELECT
    *
  FROM src
  WHERE
    src.g0 IN (
      SELECT
        key
      FROM k0
    )
), rows_ranked AS (
  SELECT
    *,
    ROW_NUMBER() OVER (PARTITION BY kept.pid, kept.g0 ORDER BY kept.rk) AS rn,
    MIN(kept.rk) OVER (PARTITION BY kept.pid, kept.g0) AS grk
  FROM kept
), rows_bounded AS (
  SELECT
    *
  FROM rows_ranked
  WHERE
    rows_ranked.rn <= 12
), groups_ranked AS (
  SELECT
    *,
    DENSE_RANK() OVER (PARTITION BY rows_bounded.pid ORDER BY rows_bounded.grk, rows_bounded.g0) AS gn
  FROM rows_bounded
), bounded AS (
  SELECT
    *
  FROM groups_ranked
  WHERE
    groups_ranked.gn <= 3
), agg AS (
  SELECT
    bounded.g0,
    CAST(SUM(
      (
        LEAST(GREATEST(CAST(ROUND(CAST(bounded.v AS DOUBLE) / 0.01) AS BIGINT), 0), 100000) - 50000
      )
    ) AS BIGINT) AS s,
    COUNT(*) AS n
  FROM bounded
  GROUP BY
    bounded.g0
)
SELECT
  k0.key AS g0,
  COALESCE(agg.s, 0) AS s,
  COALESCE(agg.n, 0) AS n
FROM k0
LEFT JOIN agg
  ON agg.g0 = k0.key
ORDER BY
  k0.ord
