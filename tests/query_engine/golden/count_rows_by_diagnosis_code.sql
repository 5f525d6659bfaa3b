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
    rows_ranked.rn <= 10
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
    groups_ranked.gn <= 1
), agg AS (
  SELECT
    bounded.g0,
    COUNT(*) AS n
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
