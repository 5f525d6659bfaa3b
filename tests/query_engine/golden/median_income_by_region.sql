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
      LEAST(GREATEST(CAST(joined.v AS BIGINT), -200000), 1977854) - -200000
    ) // 22223 AS d,
    CASE
      WHEN (
        LEAST(GREATEST(CAST(joined.v AS BIGINT), -200000), 1977854) - -200000
      ) % 22223 = 0
      THEN 0
      ELSE 1
    END AS e
  FROM joined
), hist AS (
  SELECT
    binned.g0,
    binned.d,
    binned.e,
    COUNT(*) AS n
  FROM binned
  GROUP BY
    binned.g0,
    binned.d,
    binned.e
), cand AS (
  SELECT
    j
  FROM (VALUES
    (0),
    (1),
    (2),
    (3),
    (4),
    (5),
    (6),
    (7),
    (8),
    (9),
    (10),
    (11),
    (12),
    (13),
    (14),
    (15),
    (16),
    (17),
    (18),
    (19),
    (20),
    (21),
    (22),
    (23),
    (24),
    (25),
    (26),
    (27),
    (28),
    (29),
    (30),
    (31),
    (32),
    (33),
    (34),
    (35),
    (36),
    (37),
    (38),
    (39),
    (40),
    (41),
    (42),
    (43),
    (44),
    (45),
    (46),
    (47),
    (48),
    (49),
    (50),
    (51),
    (52),
    (53),
    (54),
    (55),
    (56),
    (57),
    (58),
    (59),
    (60),
    (61),
    (62),
    (63),
    (64),
    (65),
    (66),
    (67),
    (68),
    (69),
    (70),
    (71),
    (72),
    (73),
    (74),
    (75),
    (76),
    (77),
    (78),
    (79),
    (80),
    (81),
    (82),
    (83),
    (84),
    (85),
    (86),
    (87),
    (88),
    (89),
    (90),
    (91),
    (92),
    (93),
    (94),
    (95),
    (96),
    (97),
    (98)) AS cand(j)
)
SELECT
  k0.key AS g0,
  cand.j,
  CAST(ABS(
    1 * COALESCE(SUM(CASE WHEN hist.d < cand.j THEN hist.n ELSE 0 END), 0) - 1 * COALESCE(
      SUM(
        CASE
          WHEN hist.d > cand.j OR (
            hist.d = cand.j AND hist.e = 1
          )
          THEN hist.n
          ELSE 0
        END
      ),
      0
    )
  ) AS BIGINT) AS score
FROM k0
CROSS JOIN cand
LEFT JOIN hist
  ON hist.g0 = k0.key
GROUP BY
  k0.key,
  k0.ord,
  cand.j
ORDER BY
  k0.ord,
  cand.j
