-- count_rows_lmdb_by_atc2_and_year
-- dialect: duckdb
-- params: [2020]
WITH k0 AS (
  SELECT
    key,
    ord
  FROM (VALUES
    ('A10', 0),
    ('C10', 1),
    ('N02', 2)) AS k0(key, ord)
), k1 AS (
  SELECT
    key,
    ord
  FROM (VALUES
    (2010, 0),
    (2011, 1),
    (2012, 2),
    (2013, 3),
    (2014, 4),
    (2015, 5),
    (2016, 6),
    (2017, 7),
    (2018, 8),
    (2019, 9),
    (2020, 10),
    (2021, 11),
    (2022, 12),
    (2023, 13),
    (2024, 14)) AS k1(key, ord)
), src AS (
  SELECT
    g."person_id" AS pid,
    g."row_key" AS rk,
    SUBSTRING(g."atc", 1, 3) AS g0,
    YEAR(g."date") AS g1
  FROM "lmdb" AS g
  WHERE
    YEAR(g."date") >= $1
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
    AND src.g1 IN (
      SELECT
        key
      FROM k1
    )
), rows_weighted AS (
  SELECT
    kept.pid,
    kept.g0,
    kept.g1,
    LEAST(COUNT(*), 4) AS w,
    MIN(kept.rk) AS grk
  FROM kept
  GROUP BY
    kept.pid,
    kept.g0,
    kept.g1
), groups_ranked AS (
  SELECT
    *,
    DENSE_RANK() OVER (
      PARTITION BY rows_weighted.pid
      ORDER BY rows_weighted.grk, rows_weighted.g0, rows_weighted.g1
    ) AS gn
  FROM rows_weighted
), bounded AS (
  SELECT
    *
  FROM groups_ranked
  WHERE
    groups_ranked.gn <= 6
), agg AS (
  SELECT
    bounded.g0,
    bounded.g1,
    CAST(SUM(bounded.w) AS BIGINT) AS n
  FROM bounded
  GROUP BY
    bounded.g0,
    bounded.g1
)
SELECT
  k0.key AS g0,
  k1.key AS g1,
  COALESCE(agg.n, 0) AS n
FROM k0
CROSS JOIN k1
LEFT JOIN agg
  ON agg.g0 = k0.key AND agg.g1 = k1.key
ORDER BY
  k0.ord,
  k1.ord
