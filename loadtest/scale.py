"""The scale model: from the card's published figures to requests per second per endpoint.

Everything a load shape needs comes from here: the task rates of each user class at
national peak (``--scale 1.0``), how many Locust users of each class produce them, and
how many pre-signed payloads a run needs. ``loadtest/README.md`` walks through the same
arithmetic; :func:`national_peak` is its executable form, and the tests pin its numbers.

Units: rates are per second, durations in seconds. "Task" means one call of a user-class
task; a task may make more than one HTTP request (sign-in = nonce + SIWE; withdrawal =
GET typed data + POST signature; a gate batch = one request carrying ``GATE_BATCH`` scans).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

SECONDS_PER_YEAR: Final = 365 * 24 * 3600
SECONDS_PER_DAY: Final = 24 * 3600

# Published figures for the card (mid-2024; ../shared/DESIGN.md "Scale figures").
SERVICE_CALLS_PER_YEAR: Final = 15.1e9
DAILY_ACTIVE_USERS: Final = 8.41e6
MONTHLY_ACTIVE_USERS: Final = 156e6
PEAK_FACTOR: Final = 10.0
"""Peak over the yearly average, as DESIGN.md says to plan for."""
TRANSIT_GATE_CITIES: Final = 238
ENTRANCE_GATE_CITIES: Final = 242

# Assumptions (stated and justified in README.md; change them here only).
CONSENT_REQUESTS_PER_CALL: Final = 0.01
"""One new consent request per 100 service calls (a department asks once, then checks)."""
GRANTS_PER_REQUEST: Final = 0.8
"""Share of consent requests that citizens grant."""
WITHDRAWALS_PER_GRANT: Final = 0.05
"""One withdrawal per 20 grants."""
APP_SESSION_SHARE: Final = 0.2
"""Share of daily active card users who open the consent pages of the app that day."""
DAY_MEAN_FACTOR: Final = 0.42
"""Mean of the compressed-day profile (peak = 1.0); 1 / this is the app's peak-hour factor.
:data:`loadtest.shapes.DAY_POINTS` is pinned to it by a test."""
ONLINE_SCANS_PER_CITY: Final = 2.0
"""Scans per second per city with gates sent for online validation at peak; most gates
validate offline and only upload reports, so this is the online minority."""
GATE_BATCH: Final = 20
"""Scans per ``POST /v1/gate/validations`` batch."""
REGISTRAR_TASKS_PER_S: Final = 1 / 30
"""The one Registrar user: a department registration or lookup every 30 s, any scale."""
ACCESS_CHANNELS: Final = 434
"""Published: the card's access channels (each a department integration)."""
FEED_POLL_S: Final = 5.0
"""Each access channel polls its withdrawal feed every 5 s (learns of withdrawals at once)."""
ALLOWED_CHECK_SHARE: Final = 0.9
"""Share of access checks for a subject who consented (the rest are denied: no consent)."""

# Per-user pacing (tasks per second per Locust user, ``constant_throughput``).
PER_USER_TASKS_PER_S: Final = MappingProxyType({"Department": 5.0, "Citizen": 0.2, "Gate": 0.5})


@dataclass(frozen=True)
class ClassModel:
    """One user class at national peak: its task rates (tasks/s) and its pacing."""

    name: str
    tasks: dict[str, float]
    per_user: float
    requests_per_task: dict[str, int] = field(default_factory=dict)

    @property
    def tasks_per_s(self) -> float:
        """Sum of the class's task rates (tasks/s)."""
        return sum(self.tasks.values())

    @property
    def users(self) -> float:
        """Locust users needed at national peak (tasks/s divided by each user's pace)."""
        return self.tasks_per_s / self.per_user


def service_calls_peak() -> float:
    """Service calls per second at national peak: yearly calls / seconds a year x 10
    (about 4,788/s)."""
    return SERVICE_CALLS_PER_YEAR / SECONDS_PER_YEAR * PEAK_FACTOR


def national_peak() -> dict[str, ClassModel]:
    """The three scaled user classes at ``--scale 1.0``, keyed by class name.

    Department: every service call is a department using a card holder's data and is
    preceded by one access check; 1 % of calls come with a new consent request; each
    access channel polls its withdrawal feed every FEED_POLL_S.
    Citizen: app sessions of 20 % of daily actives, spread over the compressed day (peak
    factor 1 / DAY_MEAN_FACTOR), each a sign-in, a look at the requests awaiting a
    signature, a consent list and an access-log view;
    grants answer 80 % of requests; withdrawals are 5 % of grants. Gate: online scans in
    batches of ``GATE_BATCH``.
    """
    calls = service_calls_peak()
    requests = calls * CONSENT_REQUESTS_PER_CALL
    grants = requests * GRANTS_PER_REQUEST
    sessions = DAILY_ACTIVE_USERS * APP_SESSION_SHARE / SECONDS_PER_DAY / DAY_MEAN_FACTOR
    scans = (TRANSIT_GATE_CITIES + ENTRANCE_GATE_CITIES) * ONLINE_SCANS_PER_CITY
    return {
        "Department": ClassModel(
            "Department",
            {
                "access_check": calls,
                "request_consent": requests,
                "withdrawal_feed": ACCESS_CHANNELS / FEED_POLL_S,
            },
            PER_USER_TASKS_PER_S["Department"],
        ),
        "Citizen": ClassModel(
            "Citizen",
            {
                "sign_in": sessions,
                "pending_requests": sessions,
                "list_consents": sessions,
                "access_log": sessions,
                "grant": grants,
                "withdraw": grants * WITHDRAWALS_PER_GRANT,
            },
            PER_USER_TASKS_PER_S["Citizen"],
            {"sign_in": 2, "withdraw": 2},
        ),
        "Gate": ClassModel(
            "Gate", {"validate_batch": scans / GATE_BATCH}, PER_USER_TASKS_PER_S["Gate"]
        ),
    }


MODEL: Final = national_peak()


def task_weights(class_name: str) -> dict[str, int]:
    """Integer Locust task weights of a class: its task rates in milli-tasks/s (ratios
    are what matter; every task keeps a weight of at least 1)."""
    return {k: max(1, round(v * 1000)) for k, v in MODEL[class_name].tasks.items()}


def class_weights() -> dict[str, int]:
    """Integer Locust user-class weights: users needed at national peak, x100."""
    return {name: max(1, round(m.users * 100)) for name, m in MODEL.items()}


def users_at(scale: float, factor: float = 1.0) -> int:
    """Scaled Locust users (Registrar excluded) at ``scale`` x ``factor`` of national
    peak; at least 1. Raises ValueError for a non-positive scale."""
    if scale <= 0:
        raise ValueError("scale must be > 0")
    return max(1, round(sum(m.users for m in MODEL.values()) * scale * factor))


def endpoint_rates(scale: float = 1.0) -> dict[str, float]:
    """Requests per second per endpoint (``"METHOD /path"``, Locust names) at ``scale``.

    The Registrar is not scaled (one user, :data:`REGISTRAR_TASKS_PER_S`).
    """
    m = {name: {k: v * scale for k, v in c.tasks.items()} for name, c in MODEL.items()}
    d, c, g = m["Department"], m["Citizen"], m["Gate"]
    return {
        "POST /v1/access-checks": d["access_check"],
        "POST /v1/consent-requests": d["request_consent"],
        "GET /v1/department/withdrawals": d["withdrawal_feed"],
        "POST /v1/auth/siwe/nonce": c["sign_in"],
        "POST /v1/auth/siwe": c["sign_in"],
        "GET /v1/subjects/[address]/consent-requests": c["pending_requests"],
        "GET /v1/subjects/[address]/consents": c["list_consents"],
        "GET /v1/subjects/[address]/access-log": c["access_log"],
        "POST /v1/consents": c["grant"],
        "GET /v1/consents/[id]/withdrawal": c["withdraw"],
        "POST /v1/consents/[id]/withdrawal": c["withdraw"],
        "POST /v1/gate/validations": g["validate_batch"],
        "POST /v1/departments": REGISTRAR_TASKS_PER_S / 2,
        "GET /v1/departments/[id]": REGISTRAR_TASKS_PER_S / 2,
    }


MAX_POOL_GRANTS: Final = 50_000
MAX_POOL_WITHDRAWALS: Final = 500


@dataclass(frozen=True)
class PoolSize:
    """How many pre-built payloads a run needs (each worker's share already included)."""

    grants: int
    withdrawals: int
    sign_ins: int
    gate_codes: int
    departments: int


def pool_size(scale: float, load_seconds: float, workers: int = 1, margin: float = 1.5) -> PoolSize:
    """Payloads for a run of ``load_seconds`` (integral of the shape factor over time,
    seconds at full scale) split over ``workers`` partitions.

    Capped so setup stays bounded (every withdrawal costs a grant transaction first; every
    grant an API call and a signature): beyond the caps the run counts
    ``pool_exhausted.*`` in the summary instead of sending.

    Each partition alone covers ``margin`` x the whole run's demand, because Locust may
    put every user of a class on one worker. Sign-ins are capped: SIWE nonces live 10
    minutes, so longer runs sign the rest inline (counted in the summary).
    """
    c = MODEL["Citizen"].tasks
    g = MODEL["Gate"].tasks

    def need(rate: float, floor: int) -> int:
        return max(floor, round(rate * scale * load_seconds * margin)) * max(1, workers)

    return PoolSize(
        grants=min(need(c["grant"], 8), MAX_POOL_GRANTS),
        withdrawals=min(need(c["withdraw"], 2), MAX_POOL_WITHDRAWALS),
        sign_ins=min(need(c["sign_in"], 8) + users_at(scale) * max(1, workers), 5000),
        gate_codes=min(need(g["validate_batch"], 4) * GATE_BATCH, 20000),
        departments=max(2, round(REGISTRAR_TASKS_PER_S * load_seconds * margin) + 2),
    )
