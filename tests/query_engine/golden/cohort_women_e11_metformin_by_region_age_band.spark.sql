-- cohort_women_e11_metformin_by_region_age_band@spark
-- dialect: spark
-- params: ["F", "A10BA02", "E11", "2018-01-01", "2020-12-31"]
WITH k0 AS (
  SELECT
    key,
    ord
  FROM VALUES
    ('Hovedstaden', 0),
    ('Sjælland', 1),
    ('Syddanmark', 2),
    ('Midtjylland', 3),
    ('Nordjylland', 4) AS k0(key, ord)
), k1 AS (
  SELECT
    key,
    ord
  FROM VALUES
    ('0-9', 0),
    ('10-19', 1),
    ('20-29', 2),
    ('30-39', 3),
    ('40-49', 4),
    ('50-59', 5),
    ('60-69', 6),
    ('70-79', 7),
    ('80-89', 8),
    ('90+', 9) AS k1(key, ord)
), src AS (
  SELECT
    g.`person_id` AS pid,
    g.`row_key` AS rk,
    g.`region` AS g0,
    CASE
      WHEN (
        YEAR(
          CASE
            WHEN NOT g.`death_date` IS NULL AND g.`death_date` < CAST('2024-12-31' AS DATE)
            THEN g.`death_date`
            ELSE CAST('2024-12-31' AS DATE)
          END
        ) - YEAR(g.`birth_date`) - (
          CASE
            WHEN (
              (
                MONTH(
                  CASE
                    WHEN NOT g.`death_date` IS NULL AND g.`death_date` < CAST('2024-12-31' AS DATE)
                    THEN g.`death_date`
                    ELSE CAST('2024-12-31' AS DATE)
                  END
                ) * 100
              ) + DAY(
                CASE
                  WHEN NOT g.`death_date` IS NULL AND g.`death_date` < CAST('2024-12-31' AS DATE)
                  THEN g.`death_date`
                  ELSE CAST('2024-12-31' AS DATE)
                END
              )
            ) < (
              (
                MONTH(g.`birth_date`) * 100
              ) + DAY(g.`birth_date`)
            )
            THEN 1
            ELSE 0
          END
        )
      ) >= 90
      THEN '90+'
      ELSE CAST((
        YEAR(
          CASE
            WHEN NOT g.`death_date` IS NULL AND g.`death_date` < CAST('2024-12-31' AS DATE)
            THEN g.`death_date`
            ELSE CAST('2024-12-31' AS DATE)
          END
        ) - YEAR(g.`birth_date`) - (
          CASE
            WHEN (
              (
                MONTH(
                  CASE
                    WHEN NOT g.`death_date` IS NULL AND g.`death_date` < CAST('2024-12-31' AS DATE)
                    THEN g.`death_date`
                    ELSE CAST('2024-12-31' AS DATE)
                  END
                ) * 100
              ) + DAY(
                CASE
                  WHEN NOT g.`death_date` IS NULL AND g.`death_date` < CAST('2024-12-31' AS DATE)
                  THEN g.`death_date`
                  ELSE CAST('2024-12-31' AS DATE)
                END
              )
            ) < (
              (
                MONTH(g.`birth_date`) * 100
              ) + DAY(g.`birth_date`)
            )
            THEN 1
            ELSE 0
          END
        )
      ) DIV 10 * 10 AS STRING) || '-' || CAST((
        YEAR(
          CASE
            WHEN NOT g.`death_date` IS NULL AND g.`death_date` < CAST('2024-12-31' AS DATE)
            THEN g.`death_date`
            ELSE CAST('2024-12-31' AS DATE)
          END
        ) - YEAR(g.`birth_date`) - (
          CASE
            WHEN (
              (
                MONTH(
                  CASE
                    WHEN NOT g.`death_date` IS NULL AND g.`death_date` < CAST('2024-12-31' AS DATE)
                    THEN g.`death_date`
                    ELSE CAST('2024-12-31' AS DATE)
                  END
                ) * 100
              ) + DAY(
                CASE
                  WHEN NOT g.`death_date` IS NULL AND g.`death_date` < CAST('2024-12-31' AS DATE)
                  THEN g.`death_date`
                  ELSE CAST('2024-12-31' AS DATE)
                END
              )
            ) < (
              (
                MONTH(g.`birth_date`) * 100
              ) + DAY(g.`birth_date`)
            )
            THEN 1
            ELSE 0
          END
        )
      ) DIV 10 * 10 + 9 AS STRING)
    END AS g1
  FROM `cpr` AS g
  WHERE
    g.`sex` = :p1
    AND g.`person_id` IN (
      SELECT
        c0.`person_id`
      FROM `lmdb` AS c0
      WHERE
        c0.`atc` = :p2
    )
    AND g.`person_id` IN (
      SELECT
        c1.`person_id`
      FROM `lpr` AS c1
      WHERE
        STARTSWITH(c1.`icd10`, :p3) AND c1.`admission_date` BETWEEN :p4 AND :p5
    )
), rows_ranked AS (
  SELECT
    *,
    ROW_NUMBER() OVER (PARTITION BY src.pid ORDER BY src.rk NULLS LAST) AS rn
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
    rows_bounded.g1,
    COUNT(*) AS n
  FROM rows_bounded
  GROUP BY
    rows_bounded.g0,
    rows_bounded.g1
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
