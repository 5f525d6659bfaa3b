-- deaths_by_cause_chapter_and_vital_status
-- dialect: duckdb
-- params: []
WITH k0 AS (
  SELECT
    key,
    ord
  FROM (VALUES
    ('I', 0),
    ('II', 1),
    ('IV', 2),
    ('V', 3),
    ('IX', 4),
    ('X', 5),
    ('XXI', 6)) AS k0(key, ord)
), k1 AS (
  SELECT
    key,
    ord
  FROM (VALUES
    ('alive', 0),
    ('dead', 1)) AS k1(key, ord)
), src AS (
  SELECT
    g."person_id" AS pid,
    g."row_key" AS rk,
    CASE
      WHEN SUBSTRING(g."cause_icd10", 1, 3) BETWEEN 'A00' AND 'B99'
      THEN 'I'
      WHEN SUBSTRING(g."cause_icd10", 1, 3) BETWEEN 'C00' AND 'D48'
      THEN 'II'
      WHEN SUBSTRING(g."cause_icd10", 1, 3) BETWEEN 'E00' AND 'E90'
      THEN 'IV'
      WHEN SUBSTRING(g."cause_icd10", 1, 3) BETWEEN 'F00' AND 'F99'
      THEN 'V'
      WHEN SUBSTRING(g."cause_icd10", 1, 3) BETWEEN 'I00' AND 'I99'
      THEN 'IX'
      WHEN SUBSTRING(g."cause_icd10", 1, 3) BETWEEN 'J00' AND 'J99'
      THEN 'X'
      WHEN SUBSTRING(g."cause_icd10", 1, 3) BETWEEN 'Z00' AND 'Z99'
      THEN 'XXI'
    END AS g0
  FROM "dar" AS g
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
), rows_weighted AS (
  SELECT
    kept.pid,
    kept.g0,
    LEAST(COUNT(*), 1) AS w,
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
    bounded.*,
    CASE
      WHEN NOT p."death_date" IS NULL AND p."death_date" <= CAST('2024-12-31' AS DATE)
      THEN 'dead'
      ELSE 'alive'
    END AS g1
  FROM bounded
  JOIN "persons" AS p
    ON p."person_id" = bounded.pid
), agg AS (
  SELECT
    joined.g0,
    joined.g1,
    CAST(SUM(joined.w) AS BIGINT) AS n
  FROM joined
  GROUP BY
    joined.g0,
    joined.g1
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
