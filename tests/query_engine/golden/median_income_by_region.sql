-- median_income_by_region
-- dialect: duckdb
-- params: [2022]
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
    LEAST(
      GREATEST(
        CASE WHEN g."disposable_income" IS NULL THEN 0 ELSE g."disposable_income" END,
        -200000
      ),
      2000000
    ) AS v
  FROM "ind" AS g
  WHERE
    g."year" = $1
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
), binned AS (
  SELECT
    joined.g0,
    (
      LEAST(GREATEST(CAST(joined.v AS BIGINT), -200000), 1999798) - -200000
    ) // 1101 AS d,
    CASE
      WHEN (
        LEAST(GREATEST(CAST(joined.v AS BIGINT), -200000), 1999798) - -200000
      ) % 1101 = 0
      THEN 1
      ELSE 0
    END AS e
  FROM joined
), hist AS (
  SELECT
    binned.g0,
    binned.d,
    SUM(binned.e) AS n_on,
    COUNT(*) AS n_bin
  FROM binned
  GROUP BY
    binned.g0,
    binned.d
), cand AS (
  SELECT
    UNNEST(GENERATE_SERIES(0, 1998)) AS j
), dense AS (
  SELECT
    k0.key AS g0,
    k0.ord AS o0,
    cand.j,
    COALESCE(hist.n_on, 0) AS n_on,
    COALESCE(hist.n_bin, 0) AS n_bin
  FROM k0
  CROSS JOIN cand
  LEFT JOIN hist
    ON hist.g0 = k0.key AND hist.d = cand.j
), cum AS (
  SELECT
    dense.g0,
    dense.o0,
    dense.j,
    dense.n_on,
    CAST(SUM(dense.n_bin) OVER (PARTITION BY dense.g0 ORDER BY dense.j) - dense.n_bin AS BIGINT) AS below,
    CAST(SUM(dense.n_bin) OVER (PARTITION BY dense.g0) AS BIGINT) AS n_rows
  FROM dense
)
SELECT
  cum.g0,
  cum.j,
  CAST(ABS(1 * cum.below - 1 * (
    cum.n_rows - cum.below - cum.n_on
  )) AS BIGINT) AS score,
  cum.below,
  cum.n_rows
FROM cum
ORDER BY
  cum.o0,
  cum.j
