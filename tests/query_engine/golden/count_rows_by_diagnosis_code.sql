-- count_rows_by_diagnosis_code
-- dialect: duckdb
-- params: ["DE1"]
WITH src AS (
  SELECT
    g."person_id" AS pid,
    g."row_key" AS rk,
    g."diagnosis_code" AS g0
  FROM "lpr" AS g
  WHERE
    STARTS_WITH(g."diagnosis_code", $1)
), kept AS (
  SELECT
    *
  FROM src
  WHERE
    NOT src.g0 IS NULL
), rows_weighted AS (
  SELECT
    kept.pid,
    kept.g0,
    LEAST(COUNT(*), 10) AS w,
    MIN(kept.rk) AS grk
  FROM kept
  GROUP BY
    kept.pid,
    kept.g0
), groups_ranked AS (
  SELECT
    *,
    DENSE_RANK() OVER (PARTITION BY rows_weighted.pid ORDER BY rows_weighted.grk, rows_weighted.g0) AS gn
  FROM rows_weighted
), bounded AS (
  SELECT
    *
  FROM groups_ranked
  WHERE
    groups_ranked.gn <= 1
), agg AS (
  SELECT
    bounded.g0,
    CAST(SUM(bounded.w) AS BIGINT) AS n
  FROM bounded
  GROUP BY
    bounded.g0
)
SELECT
  agg.g0,
  agg.n
FROM agg
ORDER BY
  agg.g0
