-- count_rows_all_contacts_by_region_chapter_preaggregated
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
), k1 AS (
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
    ('XXI', 6)) AS k1(key, ord)
), bounded AS (
  SELECT
    a."pid" AS pid,
    a."g" AS g1,
    LEAST(a."n", 3) AS w
  FROM "__preagg_lpr_icd10_chapter" AS a
  WHERE
    a."gn" <= 2
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
    p."region" AS g0
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
