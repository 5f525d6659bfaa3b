"""The parameters of the synthetic population: diseases, drugs, causes of death, education, income.

Numbers are rough Danish orders of magnitude, chosen so that standard register analyses (prevalence
by age and sex, treatment after diagnosis, causes of death, income gradients) look plausible. They are
world knowledge, not privacy facts: nothing here is read by the engine. ``TRUTHS`` holds the effects
built in by construction, which analyses of the generated data can be checked against.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from datasets.synthetic.truths import TRUTHS, DiabetesIncidence

# Ages at which the prevalence curves below are given; values in between are interpolated.
AGE_ANCHORS = (0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100)
# Lower edges of the 10 age groups used for rates per person-year and code mixes.
AGE_GROUP_EDGES = (0, 5, 15, 25, 35, 45, 55, 65, 75, 85)
N_AGE_GROUPS = len(AGE_GROUP_EDGES)
_MAX_AGE = 130


@dataclass(frozen=True)
class AgeCurve:
    """A probability by age (at ``AGE_ANCHORS``) for women and for men."""

    female: tuple[float, ...]
    male: tuple[float, ...]
    _by_age: npt.NDArray[np.float64] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.female) != len(AGE_ANCHORS) or len(self.male) != len(AGE_ANCHORS):
            raise ValueError("an age curve needs one value per anchor age")
        ages = np.arange(_MAX_AGE + 1)
        by_age = np.stack(
            [np.interp(ages, AGE_ANCHORS, self.female), np.interp(ages, AGE_ANCHORS, self.male)]
        )
        object.__setattr__(self, "_by_age", by_age)

    def at(self, age: npt.NDArray[np.integer], male: npt.NDArray[np.bool_]) -> npt.NDArray[np.float64]:
        """The probability at each whole age (interpolated between the anchors) and sex."""
        return self._by_age[male.astype(np.int64), np.minimum(age, _MAX_AGE)]


def _curve(female: tuple[float, ...], male_factor: float = 1.0) -> AgeCurve:
    return AgeCurve(female, tuple(v * male_factor for v in female))


def age_group(age: npt.NDArray[np.integer]) -> npt.NDArray[np.int64]:
    """Index of the 10-group age band (0-4, 5-14, ..., 85+)."""
    return np.searchsorted(np.asarray(AGE_GROUP_EDGES), age, side="right").astype(np.int64) - 1


@dataclass(frozen=True)
class Condition:
    """A diagnosis with its own contacts: who gets it, when, and how often it brings them back.

    ``prevalence`` is the chance of at least one contact in the 15 coverage years by age at the
    end of follow-up (reference date or death); shorter follow-up lowers it. A condition with an
    ``incidence`` instead gets its first contact at that rate per person-year (a stated truth).
    """

    icd10: str
    prevalence: AgeCurve | None
    min_age: int = 0
    dead_boost: float = 1.0
    first_type: tuple[float, float] = (0.3, 0.2)  # P(inpatient), P(emergency) of the first contact
    burst: float = 0.0  # mean number of extra contacts within burst_days of the first
    burst_days: int = 365
    rate: float = 0.0  # follow-up contacts per year after the first
    follow_years: float = 15.0
    follow_type: tuple[float, float] = (0.05, 0.05)
    los_median: float = 3.0
    incidence: DiabetesIncidence | None = None


CONDITIONS: tuple[Condition, ...] = (
    Condition(
        "E11",
        None,
        min_age=TRUTHS.diabetes.min_age,
        first_type=(0.15, 0.05),
        rate=0.6,
        incidence=TRUTHS.diabetes,
    ),
    Condition(
        "E10",
        _curve((0.001, 0.004, 0.005, 0.005, 0.005, 0.005, 0.005, 0.004, 0.003, 0.003, 0.002), 1.15),
        dead_boost=1.3,
        first_type=(0.4, 0.1),
        rate=2.5,
    ),
    Condition(
        "I10",
        AgeCurve(
            (0, 0, 0.002, 0.004, 0.012, 0.035, 0.065, 0.1, 0.12, 0.12, 0.1),
            (0, 0, 0.003, 0.006, 0.018, 0.045, 0.075, 0.1, 0.11, 0.1, 0.09),
        ),
        min_age=18,
        first_type=(0.05, 0.05),
        rate=0.25,
    ),
    Condition(
        "I21",
        AgeCurve(
            (0, 0, 0, 0.0003, 0.0015, 0.004, 0.009, 0.018, 0.035, 0.05, 0.05),
            (0, 0, 0, 0.001, 0.005, 0.013, 0.027, 0.042, 0.06, 0.07, 0.07),
        ),
        min_age=25,
        dead_boost=2.0,
        first_type=(0.7, 0.3),
        burst=2.0,
        burst_days=180,
        rate=0.3,
        los_median=4,
    ),
    Condition(
        "I48",
        AgeCurve(
            (0, 0, 0.0003, 0.0007, 0.003, 0.008, 0.025, 0.05, 0.09, 0.11, 0.1),
            (0, 0, 0.0005, 0.001, 0.004, 0.012, 0.035, 0.07, 0.12, 0.14, 0.12),
        ),
        min_age=20,
        dead_boost=1.5,
        first_type=(0.35, 0.35),
        burst=1.0,
        burst_days=90,
        rate=0.5,
        los_median=2,
    ),
    Condition(
        "I50",
        _curve((0, 0, 0, 0.0005, 0.0015, 0.004, 0.01, 0.025, 0.055, 0.085, 0.09), 1.3),
        min_age=25,
        dead_boost=2.5,
        first_type=(0.6, 0.2),
        burst=1.5,
        burst_days=120,
        rate=1.0,
        follow_type=(0.15, 0.1),
        los_median=6,
    ),
    Condition(
        "J44",
        _curve((0, 0, 0, 0.0005, 0.004, 0.015, 0.035, 0.06, 0.07, 0.06, 0.04)),
        min_age=35,
        dead_boost=2.0,
        first_type=(0.4, 0.3),
        rate=0.8,
        follow_type=(0.2, 0.2),
        los_median=5,
    ),
    Condition(
        "J45",
        AgeCurve(
            (0.006, 0.07, 0.045, 0.028, 0.022, 0.017, 0.014, 0.013, 0.011, 0.009, 0.006),
            (0.009, 0.095, 0.045, 0.022, 0.018, 0.014, 0.012, 0.011, 0.01, 0.008, 0.005),
        ),
        min_age=1,
        first_type=(0.15, 0.3),
        rate=0.4,
        follow_years=5,
        follow_type=(0.05, 0.15),
        los_median=1,
    ),
    Condition(
        "C50",
        AgeCurve(
            (0, 0, 0.0002, 0.002, 0.008, 0.02, 0.035, 0.045, 0.045, 0.04, 0.035),
            (0, 0, 0, 0.000014, 0.000056, 0.00014, 0.00025, 0.00032, 0.00032, 0.00028, 0.00025),
        ),
        min_age=20,
        dead_boost=2.0,
        first_type=(0.5, 0.0),
        burst=6.0,
        burst_days=365,
        rate=1.0,
        follow_years=5,
        los_median=2,
    ),
    Condition(
        "F32",
        AgeCurve(
            (0, 0.006, 0.04, 0.04, 0.035, 0.03, 0.022, 0.017, 0.017, 0.015, 0.012),
            (0, 0.004, 0.02, 0.022, 0.02, 0.018, 0.015, 0.012, 0.012, 0.012, 0.01),
        ),
        min_age=8,
        first_type=(0.15, 0.1),
        burst=3.0,
        burst_days=365,
        rate=0.3,
        follow_years=3,
        los_median=14,
    ),
    Condition(
        "G30",
        _curve((0, 0, 0, 0, 0, 0.0003, 0.002, 0.012, 0.045, 0.08, 0.08), 0.8),
        min_age=50,
        dead_boost=2.5,
        first_type=(0.2, 0.1),
        rate=0.6,
        follow_type=(0.1, 0.1),
        los_median=8,
    ),
    Condition(
        "M16",
        _curve((0, 0, 0, 0.0005, 0.002, 0.01, 0.03, 0.05, 0.06, 0.04, 0.03), 0.85),
        min_age=30,
        first_type=(0.1, 0.0),
        burst=2.0,
        burst_days=365,
        rate=0.1,
        follow_years=3,
        los_median=3,
    ),
    Condition(
        "M17",
        _curve((0, 0, 0, 0.001, 0.004, 0.015, 0.04, 0.06, 0.06, 0.04, 0.03), 0.8),
        min_age=30,
        first_type=(0.1, 0.0),
        burst=2.0,
        burst_days=365,
        rate=0.1,
        follow_years=3,
        los_median=3,
    ),
    Condition(
        "S72",
        AgeCurve(
            (0, 0.0002, 0.0003, 0.0004, 0.0008, 0.002, 0.005, 0.015, 0.05, 0.12, 0.15),
            (0, 0.0002, 0.0004, 0.0004, 0.0006, 0.0012, 0.003, 0.008, 0.025, 0.06, 0.08),
        ),
        dead_boost=1.5,
        first_type=(0.9, 0.1),
        burst=1.0,
        burst_days=90,
        los_median=9,
    ),
)


@dataclass(frozen=True)
class Regimen:
    """A drug treatment: one substance chosen among ``options``, redeemed repeatedly for a while.

    With a ``trigger`` the regimen starts after the first contact for that diagnosis with chance
    ``uptake``; without one it is background prescribing with chance ``background`` by age at the
    end of follow-up, starting uniformly while the person is aged ``min_age``..``max_age``.
    """

    options: tuple[tuple[str, float], ...]
    trigger: str | None = None
    uptake: float = 0.0
    background: AgeCurve | None = None
    min_age: int = 0
    max_age: int = 200
    delay_days: tuple[int, int] = (0, 60)
    years: float | None = None  # fixed treatment length; None: until stopped
    stop_rate: float = 0.05  # yearly chance of stopping
    interval_days: float = 90.0
    packages: tuple[float, float, float] = (0.8, 0.17, 0.03)  # P(1, 2, 3 packages)


REGIMENS: tuple[Regimen, ...] = (
    # Type 2 diabetes: metformin first, then insulins and the newer drugs.
    Regimen((("A10BA02", 1),), "E11", 0.85, stop_rate=0.04),
    Regimen(
        (("A10AE04", 0.4), ("A10AB05", 0.3), ("A10AD05", 0.3)),
        "E11",
        0.25,
        delay_days=(180, 1500),
        interval_days=60,
    ),
    Regimen((("A10BJ02", 0.5), ("A10BJ06", 0.5)), "E11", 0.25, delay_days=(90, 2000)),
    Regimen((("A10BK01", 0.5), ("A10BK03", 0.5)), "E11", 0.25, delay_days=(90, 2000)),
    Regimen((("C10AA05", 0.75), ("C10AA01", 0.25)), "E11", 0.5, delay_days=(0, 365)),
    # Type 1 diabetes: basal and bolus insulin.
    Regimen((("A10AE04", 0.6), ("A10AE05", 0.4)), "E10", 0.95, interval_days=60, stop_rate=0.0),
    Regimen((("A10AB05", 0.6), ("A10AB04", 0.4)), "E10", 0.95, interval_days=60, stop_rate=0.0),
    # Myocardial infarction: secondary prevention, dual antiplatelet therapy for a year.
    Regimen((("B01AC06", 1),), "I21", 0.85, delay_days=(0, 14)),
    Regimen((("C10AA05", 0.8), ("C10AA01", 0.2)), "I21", 0.85, delay_days=(0, 14)),
    Regimen((("B01AC24", 0.55), ("B01AC04", 0.45)), "I21", 0.8, delay_days=(0, 7), years=1, interval_days=60),
    Regimen((("C07AB02", 0.7), ("C07AB07", 0.3)), "I21", 0.6, delay_days=(0, 14)),
    Regimen((("C09AA05", 1),), "I21", 0.4, delay_days=(0, 30)),
    # Hypertension.
    Regimen((("C09CA01", 0.4), ("C08CA01", 0.4), ("C09AA02", 0.2)), "I10", 0.9),
    Regimen((("C03AB01", 0.5), ("C07AB02", 0.5)), "I10", 0.4, delay_days=(90, 1500)),
    # Atrial fibrillation: anticoagulation and rate control.
    Regimen((("B01AF02", 0.45), ("B01AF01", 0.25), ("B01AA03", 0.3)), "I48", 0.8, delay_days=(0, 30)),
    Regimen((("C07AB02", 0.55), ("C07AB07", 0.35), ("C01AA05", 0.1)), "I48", 0.6, delay_days=(0, 30)),
    # Heart failure.
    Regimen((("C03CA01", 1),), "I50", 0.8, delay_days=(0, 14)),
    Regimen((("C09AA05", 0.6), ("C09CA01", 0.4)), "I50", 0.7, delay_days=(0, 30)),
    Regimen((("C07AB07", 1),), "I50", 0.7, delay_days=(0, 60)),
    Regimen((("C03DA01", 1),), "I50", 0.35, delay_days=(30, 365)),
    # COPD and asthma: inhalers.
    Regimen((("R03BB04", 1),), "J44", 0.6),
    Regimen((("R03AK07", 0.6), ("R03AL03", 0.4)), "J44", 0.5),
    Regimen((("R03AC02", 1),), "J44", 0.6, interval_days=120),
    Regimen((("R03AC02", 1),), "J45", 0.9, interval_days=120, stop_rate=0.2),
    Regimen((("R03BA02", 0.6), ("R03AK07", 0.4)), "J45", 0.6, stop_rate=0.25),
    # Breast cancer: five years of endocrine therapy.
    Regimen(
        (("L02BA01", 0.4), ("L02BG04", 0.4), ("L02BG03", 0.2)),
        "C50",
        0.75,
        delay_days=(60, 240),
        years=5,
        stop_rate=0.03,
    ),
    # Depression: an antidepressant for an episode.
    Regimen(
        (("N06AB10", 0.4), ("N06AB06", 0.35), ("N06AB04", 0.25)),
        "F32",
        0.8,
        delay_days=(0, 30),
        stop_rate=0.5,
        interval_days=60,
    ),
    Regimen((("N06AX11", 1),), "F32", 0.15, stop_rate=0.5, interval_days=60),
    # Alzheimer's disease.
    Regimen((("N06DA02", 0.7), ("N06DX01", 0.3)), "G30", 0.6, delay_days=(0, 90)),
    # Osteoarthritis and hip fracture: pain relief, then bone protection.
    Regimen((("N02BE01", 1),), "M16", 0.6, years=1, interval_days=60),
    Regimen((("N02BE01", 1),), "M17", 0.6, years=1, interval_days=60),
    Regimen((("M01AE01", 0.7), ("M01AB05", 0.3)), "M17", 0.3, years=0.5, interval_days=45),
    Regimen((("N02AX02", 1),), "M16", 0.15, years=0.5, interval_days=45),
    Regimen((("N02BE01", 1),), "S72", 0.7, delay_days=(0, 14), years=0.5, interval_days=60),
    Regimen(
        (("N02AX02", 0.6), ("N02AA01", 0.4)), "S72", 0.3, delay_days=(0, 7), years=0.25, interval_days=30
    ),
    Regimen((("M05BA04", 1),), "S72", 0.3, delay_days=(30, 180), years=5, stop_rate=0.1),
    # Background prescribing in general practice, without a hospital diagnosis.
    Regimen(
        (("H03AA01", 1),),
        background=AgeCurve(
            (0, 0.001, 0.005, 0.015, 0.03, 0.05, 0.07, 0.09, 0.1, 0.1, 0.1),
            (0, 0.0005, 0.001, 0.004, 0.008, 0.012, 0.018, 0.022, 0.025, 0.025, 0.025),
        ),
        stop_rate=0.01,
    ),
    Regimen(
        (("C10AA05", 0.6), ("C10AA01", 0.4)),
        background=_curve((0, 0, 0, 0.002, 0.02, 0.07, 0.15, 0.22, 0.22, 0.15, 0.1), 1.2),
        min_age=30,
    ),
    Regimen(
        (("G03AA07", 0.7), ("G03AC09", 0.3)),
        background=AgeCurve((0, 0.02, 0.35, 0.4, 0.25, 0.1, 0, 0, 0, 0, 0), (0,) * 11),
        min_age=15,
        max_age=40,
        stop_rate=0.35,
    ),
    Regimen(
        (("A02BC02", 0.6), ("A02BC05", 0.4)),
        background=_curve((0, 0.001, 0.005, 0.01, 0.03, 0.05, 0.08, 0.11, 0.13, 0.13, 0.12)),
        stop_rate=0.3,
    ),
    Regimen(
        (("C08CA01", 1),),
        background=_curve((0, 0, 0, 0.001, 0.005, 0.02, 0.05, 0.08, 0.1, 0.1, 0.09)),
        min_age=30,
    ),
    Regimen(
        (("N05CF01", 1),),
        background=_curve((0, 0, 0.002, 0.005, 0.008, 0.012, 0.02, 0.03, 0.05, 0.07, 0.07), 0.7),
        stop_rate=0.3,
        interval_days=60,
    ),
    Regimen(
        (("N06AB10", 0.5), ("N06AB04", 0.5)),
        background=AgeCurve(
            (0, 0.002, 0.03, 0.035, 0.035, 0.035, 0.03, 0.03, 0.04, 0.05, 0.05),
            (0, 0.001, 0.015, 0.02, 0.02, 0.02, 0.018, 0.018, 0.025, 0.03, 0.03),
        ),
        stop_rate=0.4,
        interval_days=60,
    ),
    Regimen(
        (("A10BA02", 1),),
        background=_curve((0, 0, 0.001, 0.002, 0.003, 0.005, 0.006, 0.006, 0.005, 0.004, 0.003)),
    ),
    Regimen(
        (("R03AC02", 1),),
        background=_curve((0, 0.02, 0.015, 0.01, 0.01, 0.01, 0.01, 0.012, 0.012, 0.01, 0.01)),
        stop_rate=0.4,
        interval_days=150,
    ),
    Regimen(
        (("B01AC06", 1),),
        background=_curve((0, 0, 0, 0, 0.002, 0.008, 0.02, 0.04, 0.06, 0.06, 0.05), 1.2),
        min_age=40,
    ),
)

# Defined daily doses per package, by substance (typical Danish pack sizes).
PACK_DDD: dict[str, float] = {
    "A10BA02": 50, "A10AE04": 37.5, "A10AE05": 37.5, "A10AB05": 37.5, "A10AB04": 37.5, "A10AD05": 37.5,
    "A10BJ02": 30, "A10BJ06": 28, "A10BK01": 98, "A10BK03": 90, "C10AA05": 100, "C10AA01": 100,
    "B01AC06": 100, "B01AC24": 56, "B01AC04": 56, "C07AB02": 98, "C07AB07": 100, "C09AA05": 50,
    "C09CA01": 98, "C08CA01": 100, "C09AA02": 50, "C03AB01": 100, "B01AF02": 84, "B01AF01": 98,
    "B01AA03": 50, "C01AA05": 100, "C03CA01": 100, "C03DA01": 100, "R03BB04": 30, "R03AK07": 60,
    "R03AL03": 30, "R03AC02": 25, "R03BA02": 50, "L02BA01": 100, "L02BG04": 100, "L02BG03": 98,
    "N06AB10": 56, "N06AB06": 50, "N06AB04": 50, "N06AX11": 30, "N06DA02": 98, "N06DX01": 56,
    "N02BE01": 33.33, "M01AE01": 33.33, "M01AB05": 33.33, "N02AX02": 20, "N02AA01": 10, "M05BA04": 84,
    "H03AA01": 100, "G03AA07": 84, "G03AC09": 84, "A02BC02": 56, "A02BC05": 56, "N05CF01": 30,
    "J01CE02": 10, "J01CA04": 7, "J01CA08": 4.5, "J01FA09": 7, "A02BC01": 28, "D07AC01": 10,
    "S01AA01": 5, "R06AE07": 30, "H02AB06": 10, "N05BA01": 20,
}  # fmt: skip

# Short courses redeemed at random times: rate per person-year by age group (0-4, 5-14, ..., 85+)
# for women, and the factor for men.
ACUTE_DRUGS: tuple[tuple[str, tuple[float, ...], float], ...] = (
    ("J01CE02", (0.45, 0.25, 0.2, 0.15, 0.13, 0.12, 0.12, 0.14, 0.18, 0.22), 0.8),
    ("J01CA04", (0.25, 0.08, 0.03, 0.03, 0.03, 0.03, 0.04, 0.05, 0.06, 0.07), 1.0),
    ("J01CA08", (0.01, 0.03, 0.1, 0.1, 0.08, 0.08, 0.1, 0.12, 0.18, 0.25), 0.15),
    ("J01FA09", (0.02, 0.02, 0.02, 0.02, 0.02, 0.02, 0.02, 0.03, 0.03, 0.03), 1.0),
    ("N02BE01", (0.01, 0.01, 0.03, 0.04, 0.06, 0.08, 0.12, 0.2, 0.4, 0.6), 0.8),
    ("M01AE01", (0.0, 0.01, 0.08, 0.1, 0.1, 0.1, 0.08, 0.05, 0.03, 0.02), 0.9),
    ("A02BC01", (0.0, 0.0, 0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.06, 0.06), 0.9),
    ("D07AC01", (0.03, 0.03, 0.03, 0.03, 0.03, 0.03, 0.03, 0.03, 0.03, 0.03), 0.8),
    ("S01AA01", (0.2, 0.05, 0.02, 0.02, 0.02, 0.02, 0.02, 0.03, 0.04, 0.05), 0.9),
    ("R06AE07", (0.01, 0.05, 0.05, 0.04, 0.03, 0.02, 0.02, 0.01, 0.01, 0.01), 0.9),
    ("N02AX02", (0.0, 0.0, 0.005, 0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.06), 0.8),
    ("H02AB06", (0.0, 0.005, 0.01, 0.01, 0.02, 0.02, 0.03, 0.04, 0.05, 0.05), 1.0),
    ("N05BA01", (0.0, 0.0, 0.005, 0.01, 0.01, 0.01, 0.01, 0.01, 0.015, 0.02), 0.8),
)

# Earliest redemption date of substances marketed during the coverage period.
MARKETED_FROM: dict[str, str] = {
    "A10BJ06": "2018-03-01",
    "A10BK01": "2013-01-01",
    "A10BK03": "2014-08-01",
    "B01AC24": "2011-06-01",
    "B01AF01": "2012-02-01",
    "B01AF02": "2013-01-01",
}

# Underlying causes of death by age at death (<1, 1-14, 15-39, 40-64, 65-79, 80+) for women, and the
# factor for men; weights are normalised within each age group.
DEATH_AGE_EDGES = (0, 1, 15, 40, 65, 80)
DEATH_CAUSES: tuple[tuple[str, tuple[float, ...], float], ...] = (
    ("I25", (0, 0, 0.02, 0.06, 0.08, 0.09), 1.6),
    ("I21", (0, 0, 0.01, 0.03, 0.035, 0.03), 1.7),
    ("I50", (0, 0, 0, 0.01, 0.03, 0.06), 1.0),
    ("I64", (0, 0, 0.01, 0.025, 0.05, 0.06), 0.9),
    ("I61", (0, 0.01, 0.02, 0.02, 0.02, 0.015), 1.0),
    ("I26", (0, 0, 0.01, 0.01, 0.01, 0.01), 1.0),
    ("C34", (0, 0, 0.02, 0.12, 0.1, 0.04), 1.1),
    ("C18", (0, 0, 0.01, 0.03, 0.035, 0.03), 1.1),
    ("C25", (0, 0, 0.01, 0.035, 0.03, 0.015), 1.0),
    ("C50", (0, 0, 0.05, 0.07, 0.035, 0.02), 0.01),
    ("C56", (0, 0, 0.01, 0.025, 0.015, 0.01), 0.0),
    ("C61", (0, 0, 0, 0, 0, 0), 1.0),
    ("C71", (0, 0.05, 0.04, 0.015, 0.005, 0.002), 1.2),
    ("C92", (0, 0.05, 0.02, 0.01, 0.01, 0.008), 1.2),
    ("C80", (0, 0, 0.005, 0.02, 0.025, 0.025), 1.0),
    ("J44", (0, 0, 0.002, 0.04, 0.07, 0.06), 0.9),
    ("J18", (0.01, 0.03, 0.01, 0.01, 0.02, 0.05), 1.0),
    ("F03", (0, 0, 0, 0.002, 0.03, 0.1), 0.7),
    ("G30", (0, 0, 0, 0, 0.02, 0.05), 0.7),
    ("E11", (0, 0, 0.002, 0.01, 0.015, 0.015), 1.2),
    ("E10", (0, 0.002, 0.005, 0.005, 0.003, 0.002), 1.2),
    ("N18", (0, 0, 0.002, 0.005, 0.01, 0.02), 1.1),
    ("K70", (0, 0, 0.03, 0.04, 0.01, 0.002), 2.0),
    ("A41", (0.03, 0.03, 0.01, 0.01, 0.02, 0.03), 1.0),
    ("X59", (0.02, 0.15, 0.12, 0.02, 0.01, 0.02), 1.5),
    ("V89", (0.01, 0.15, 0.15, 0.02, 0.005, 0.002), 2.5),
    ("X70", (0, 0.05, 0.2, 0.04, 0.01, 0.005), 3.0),
    ("X42", (0, 0.02, 0.12, 0.03, 0.002, 0.001), 2.5),
    ("W19", (0, 0, 0.005, 0.005, 0.01, 0.03), 1.0),
    ("P07", (0.35, 0, 0, 0, 0, 0), 1.2),
    ("Q24", (0.2, 0.05, 0, 0, 0, 0), 1.0),
    ("R95", (0.1, 0, 0, 0, 0, 0), 1.3),
    ("R99", (0.05, 0.1, 0.1, 0.04, 0.03, 0.04), 1.2),
)
# Men's prostate cancer is given directly, as women have none.
DEATH_CAUSES_MALE_ONLY: dict[str, tuple[float, ...]] = {"C61": (0, 0, 0, 0.015, 0.04, 0.05)}
# Extra weight (on top of the normalised age-typical mix) for persons with a diagnosis.
DEATH_CAUSE_BOOSTS: dict[str, dict[str, float]] = {
    "I21": {"I21": 1.0, "I25": 1.2, "I50": 0.3},
    "I50": {"I50": 1.5, "I25": 0.8},
    "C50": {"C50": 4.0},
    "G30": {"G30": 2.5, "F03": 0.8},
    "J44": {"J44": 2.5, "J18": 0.3},
    "E11": {"E11": 0.3, "I25": 0.4, "N18": 0.2},
    "E10": {"E10": 0.8, "N18": 0.3},
    "I48": {"I64": 0.5, "I50": 0.2},
    "S72": {"W19": 0.6, "J18": 0.2},
}
# Diagnosis of hospital contacts in the last weeks of life, for causes that are not diagnoses.
TERMINAL_DIAGNOSIS = {"X59": "T14", "V89": "S06", "X70": "T71", "X42": "T40", "W19": "S72", "R95": "R99"}

# ICD-10 chapters (first, last code) with the relative rate of background contacts by age group
# (0-4, 5-14, ..., 85+). External causes (V-Y) and special codes (U) are not action diagnoses.
CHAPTER_AGE_FACTORS: tuple[tuple[str, str, tuple[float, ...]], ...] = (
    ("A00", "B99", (3, 1.5, 1, 1, 1, 1, 1, 1.2, 1.5, 2)),
    ("C00", "D48", (0.1, 0.1, 0.2, 0.4, 0.8, 1.5, 2.5, 3.5, 3.5, 3)),
    ("D50", "D89", (1, 0.5, 0.5, 0.6, 0.7, 0.8, 1, 1.5, 2, 2.5)),
    ("E00", "E90", (0.5, 0.5, 0.6, 0.8, 1, 1.3, 1.6, 2, 2, 2)),
    ("F00", "F99", (0.3, 1.2, 2, 1.5, 1.2, 1, 0.8, 0.7, 0.8, 1)),
    ("G00", "G99", (0.8, 0.8, 0.8, 1, 1.1, 1.2, 1.3, 1.5, 1.7, 1.7)),
    ("H00", "H59", (0.8, 0.6, 0.4, 0.4, 0.5, 0.8, 1.5, 3, 3.5, 3)),
    ("H60", "H95", (3, 1.5, 0.5, 0.5, 0.5, 0.6, 0.8, 1, 1.2, 1.2)),
    ("I00", "I99", (0.05, 0.05, 0.1, 0.2, 0.5, 1, 2, 3, 4, 5)),
    ("J00", "J99", (4, 1.5, 0.8, 0.7, 0.7, 0.8, 1, 1.5, 2.5, 3)),
    ("K00", "K93", (0.6, 0.8, 1, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.6)),
    ("L00", "L99", (1, 1, 1, 1, 1, 1, 1, 1, 1.2, 1.5)),
    ("M00", "M99", (0.2, 0.5, 1, 1.2, 1.5, 1.8, 2, 2, 1.8, 1.5)),
    ("N00", "N99", (0.6, 0.5, 1, 1, 1, 1, 1.2, 1.5, 2, 2.5)),
    ("O00", "O99", (0, 0, 1.5, 4, 1.5, 0, 0, 0, 0, 0)),
    ("P00", "P96", (3, 0, 0, 0, 0, 0, 0, 0, 0, 0)),
    ("Q00", "Q99", (3, 1, 0.5, 0.3, 0.2, 0.2, 0.2, 0.1, 0.1, 0.1)),
    ("R00", "R99", (2, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.8, 2)),
    ("S00", "T98", (1.5, 2.5, 2.5, 1.5, 1.2, 1, 1, 1, 1.5, 2.5)),
    ("Z00", "Z99", (3, 1, 1.5, 2, 1.5, 1.2, 1.2, 1.3, 1.3, 1.3)),
)
FEMALE_ONLY_CODES = (("C51", "C58"), ("D25", "D28"), ("N70", "N98"), ("O00", "O99"))
MALE_ONLY_CODES = (("C60", "C63"), ("N40", "N51"))
# Frequent reasons for a hospital contact, most frequent first; together as frequent as the tail.
COMMON_CONTACT_CODES = (
    "Z03", "R10", "R07", "Z01", "J18", "N39", "S52", "S93", "S06", "S01", "S61", "S82", "S62", "M54",
    "K80", "H26", "R55", "A09", "J06", "R50", "H66", "J20", "L03", "K35", "Z09", "R06", "T78", "Z51",
    "K57", "N18", "K29", "R51",
)  # fmt: skip
# Background hospital contacts per person-year by age group, and the mix of contact types.
CONTACT_RATE = (1.0, 0.3, 0.35, 0.35, 0.35, 0.4, 0.5, 0.75, 1.05, 1.3)
CONTACT_RATE_FEMALE_FACTOR = (1.0, 1.0, 1.3, 1.4, 1.2, 1.0, 0.95, 0.9, 0.9, 0.9)
BACKGROUND_TYPE = (0.13, 0.25)  # P(inpatient), P(emergency); the rest outpatient
BIRTH_RATE_BY_AGE = ((20, 0.03), (25, 0.1), (30, 0.12), (35, 0.06), (40, 0.012))  # per woman-year
CAESAREAN_SHARE = 0.21

# Highest education (ISCED 0-8) by birth cohort: distribution of the final level at the anchors,
# interpolated between them; women born after 1960 shift towards tertiary education.
EDUCATION_COHORTS = (1920, 1940, 1960, 1975, 1990)
EDUCATION_FINAL = (
    (0.02, 0.05, 0.45, 0.33, 0.01, 0.04, 0.07, 0.03, 0.00),
    (0.01, 0.03, 0.33, 0.40, 0.01, 0.05, 0.12, 0.05, 0.00),
    (0.01, 0.02, 0.22, 0.42, 0.01, 0.06, 0.16, 0.09, 0.01),
    (0.01, 0.02, 0.17, 0.36, 0.01, 0.06, 0.19, 0.16, 0.02),
    (0.01, 0.02, 0.14, 0.29, 0.01, 0.06, 0.22, 0.22, 0.03),
)
EDUCATION_FEMALE_SHIFT = (0, 0, -0.01, -0.05, 0, 0.01, 0.04, 0.01, 0)
# Age at which each level is completed (before a person's own delay).
COMPLETION_AGE = (0, 7, 16, 19, 21, 22, 23, 25, 29)


@dataclass(frozen=True)
class Volume:
    """How many events a person has: multipliers on the rates of the modelled event streams.

    ``default`` is the model as stated above (tests and golden files depend on it, byte for byte).
    ``national`` raises hospital contacts and redeemed prescriptions to the Danish registers' published
    yearly sizes (docs/synthetic-data.md, "Event volumes"); it touches only streams that carry no
    stated truth, so ``TRUTHS`` hold at every volume.
    """

    name: str
    background_contacts: float = 1.0  # multiplies CONTACT_RATE (the long tail of diagnoses)
    short_courses: float = 1.0  # multiplies the ACUTE_DRUGS rates
    background_regimens: float = 1.0  # multiplies the chance of each background regimen (capped)
    background_inpatient: float = 1.0  # multiplies P(inpatient) of a background contact
    short_course_shape: float = 2.0  # gamma shape of a person's short-course propensity (mean one)


# Published yearly figures the national volume is calibrated to, per inhabitant (sources in
# docs/synthetic-data.md, "Event volumes"): hospital contacts (11.86 million outpatient visits in 2021
# plus admissions, 205 per 1,000 inhabitants, over about 5.83 million inhabitants), admissions alone,
# and the share of inhabitants who redeem a prescription in a year (over 4 million of about 5.9 million).
NATIONAL_TARGETS = {
    "contacts_per_person_year": 2.24,
    "admissions_per_person_year": 0.205,
    "prescription_users_share": 0.68,
}

VOLUMES: dict[str, Volume] = {
    "default": Volume("default"),
    "national": Volume(
        "national",
        background_contacts=4.1,
        short_courses=4.0,
        background_regimens=2.5,
        background_inpatient=0.5,
        short_course_shape=0.5,
    ),
}

# The known truths (I21 survival, metformin exposure, E11 incidence, income) are one frozen table,
# ``model.TRUTHS`` (defined in datasets.synthetic.truths), which the tests and the documentation read.
