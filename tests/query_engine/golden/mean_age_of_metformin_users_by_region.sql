-- mean_age_of_metformin_users_by_region
-- dialect: duckdb
-- params: ["A10BA02"]
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
    g."region" AS g0,
    LEAST(
      GREATEST(
        CASE
          WHEN (
            YEAR(
              CASE
                WHEN NOT g."death_date" IS NULL AND g."death_date" < CAST('2024-12-31' AS DATE)
                THEN g."death_date"
                ELSE CAST('2024-12-31' AS DATE)
              END
            ) - YEAR(g."birth_date") - (
              CASE
                WHEN (
                  (
                    MONTH(
                      CASE
                        WHEN NOT g."death_date" IS NULL AND g."death_date" < CAST('2024-12-31' AS DATE)
                        THEN g."death_date"
                        ELSE CAST('2024-12-31' AS DATE)
                      END
                    ) * 100
                  ) + DAY(
                    CASE
                      WHEN NOT g."death_date" IS NULL AND g."death_date" < CAST('2024-12-31' AS DATE)
                      THEN g."death_date"
                      ELSE CAST('2024-12-31' AS DATE)
                    END
                  )
                ) < (
                  (
                    MONTH(g."birth_date") * 100
                  ) + DAY(g."birth_date")
                )
                THEN 1
                ELSE 0
              END
            )
          ) IS NULL
          THEN 0
          ELSE (
            YEAR(
              CASE
                WHEN NOT g."death_date" IS NULL AND g."death_date" < CAST('2024-12-31' AS DATE)
                THEN g."death_date"
                ELSE CAST('2024-12-31' AS DATE)
              END
            ) - YEAR(g."birth_date") - (
              CASE
                WHEN (
                  (
                    MONTH(
                      CASE
                        WHEN NOT g."death_date" IS NULL AND g."death_date" < CAST('2024-12-31' AS DATE)
                        THEN g."death_date"
                        ELSE CAST('2024-12-31' AS DATE)
                      END
                    ) * 100
                  ) + DAY(
                    CASE
                      WHEN NOT g."death_date" IS NULL AND g."death_date" < CAST('2024-12-31' AS DATE)
                      THEN g."death_date"
                      ELSE CAST('2024-12-31' AS DATE)
                    END
                  )
                ) < (
                  (
                    MONTH(g."birth_date") * 100
                  ) + DAY(g."birth_date")
                )
                THEN 1
                ELSE 0
              END
            )
          )
        END,
        0
      ),
      110
    ) AS v
  FROM "cpr" AS g
  WHERE
    g."person_id" IN (
      SELECT
        c0."person_id"
      FROM "lmdb" AS c0
      WHERE
        c0."atc" = $1
    )
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
    CAST(SUM((
      CAST(rows_bounded.v AS BIGINT) - 55
    )) AS BIGINT) AS s,
    COUNT(*) AS n
  FROM rows_bounded
  GROUP BY
    rows_bounded.g0
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
