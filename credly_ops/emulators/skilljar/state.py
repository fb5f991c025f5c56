"""The local Skilljar's world: courses, students, enrollments, API clients, tokens, webhooks.

Plain values behind one lock; the routes only translate HTTP to these methods.  Deterministic
for a seed: ids, tokens and cursors come from one seeded generator, and the clock can be set.
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import hmac
import json
import random
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from credly_ops.config import DEMO_SKILLJAR_CLIENT_ID, DEMO_SKILLJAR_CLIENT_SECRET
from credly_ops.timeutil import as_utc, parse_credly_time

#: the demo world's v2 API client and v1 API key (public: they open only the local emulator)
DEMO_CLIENT_ID = DEMO_SKILLJAR_CLIENT_ID
DEMO_CLIENT_SECRET = DEMO_SKILLJAR_CLIENT_SECRET
DEMO_API_KEY = "demo-skilljar-api-key-not-a-secret"
#: seconds a token lives unless the world says otherwise
TOKEN_LIFETIME = 3600
SCOPES = "enrollments:read courses:read"
MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 25
EVENT_TYPES = frozenset(
    {"COURSE_COMPLETION", "COURSE_ENROLLMENT", "LESSON_COMPLETION", "PATH_COMPLETION"}
)


class ApiError(Exception):
    """An answer the routes turn into a JSON:API error."""

    def __init__(self, status: int, detail: str, *, title: str = "") -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.title = title or detail


def fmt_time(value: datetime) -> str:
    v = as_utc(value)
    return v.strftime("%Y-%m-%dT%H:%M:%S.") + f"{v.microsecond // 1000:03d}Z"


def parse_time(value: Any, what: str) -> datetime:
    if isinstance(value, datetime):
        return as_utc(value)
    if not isinstance(value, str):
        raise ApiError(400, f"{what} must be an ISO-8601 timestamp")
    try:
        return parse_credly_time(value)
    except ValueError:
        raise ApiError(400, f"{what} must be an ISO-8601 timestamp") from None


class Clock:
    """Real UTC time plus an offset, or a frozen instant."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._frozen: datetime | None = None
        self._offset = timedelta(0)

    def now(self) -> datetime:
        with self._lock:
            if self._frozen is not None:
                return self._frozen
            return datetime.now(UTC) + self._offset

    def set(self, moment: datetime, *, frozen: bool = False) -> None:
        target = as_utc(moment)
        with self._lock:
            if frozen:
                self._frozen, self._offset = target, timedelta(0)
            else:
                self._frozen, self._offset = None, target - datetime.now(UTC)

    def advance(self, seconds: float) -> None:
        with self._lock:
            if self._frozen is not None:
                self._frozen += timedelta(seconds=seconds)
            else:
                self._offset += timedelta(seconds=seconds)

    def reset(self) -> None:
        with self._lock:
            self._frozen, self._offset = None, timedelta(0)

    def describe(self) -> dict[str, Any]:
        with self._lock:
            frozen = self._frozen is not None
        return {"now": fmt_time(self.now()), "frozen": frozen}


@dataclass
class Course:
    id: str
    title: str


@dataclass
class Student:
    id: str
    email: str
    first_name: str
    last_name: str


@dataclass
class Enrollment:
    seq: int
    id: str
    student_id: str
    course_id: str
    enrolled_at: datetime
    completed_at: datetime | None = None
    success_status: str | None = None
    score: float | None = None
    max_score: float | None = None
    domain_name: str = "training.example.com"
    active: bool = True

    @property
    def progress_status(self) -> str:
        return "completed" if self.completed_at is not None else "in_progress"


@dataclass
class Webhook:
    id: str
    target_url: str
    event_type: str | None = "COURSE_COMPLETION"
    active: bool = True
    basic_auth_username: str | None = None
    basic_auth_password: str | None = None
    additional_headers: dict[str, str] = field(default_factory=dict)
    deactivate_reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "target_url": self.target_url,
            "event_type": self.event_type,
            "active": self.active,
            "basic_auth_username": self.basic_auth_username,
            # Skilljar does not echo passwords or header values back; neither does the local one
            "basic_auth_password": "********" if self.basic_auth_password else None,
            "additional_headers": {k: "********" for k in self.additional_headers},
            "deactivate_reason": self.deactivate_reason,
        }


@dataclass(frozen=True)
class EnrollmentQuery:
    """The filters of ``GET /v2/enrollments/`` (reference §4)."""

    progress_status: str | None = None
    completed_gte: datetime | None = None
    completed_lte: datetime | None = None
    course_id: str | None = None
    student_email: str | None = None
    student_id: str | None = None
    domains: frozenset[str] | None = None
    active: bool | None = None


class SkilljarWorld:
    """Everything the local Skilljar knows.  ``singular_types`` answers ``included`` records as
    ``student``/``course`` instead of ``students``/``courses`` (the reference leaves it open)."""

    def __init__(self, *, seed: int = 0, clock: Clock | None = None) -> None:
        self._lock = threading.RLock()
        self._rng = random.Random(seed)
        self._signing_key = self._rng.randbytes(32)
        self.clock = clock or Clock()
        self.token_lifetime = TOKEN_LIFETIME
        self.singular_types = False
        self.clients: dict[str, str] = {}
        self.api_keys: set[str] = set()
        self.courses: dict[str, Course] = {}
        self.students: dict[str, Student] = {}
        self.enrollments: dict[str, Enrollment] = {}
        self.webhooks: dict[str, Webhook] = {}
        self._tokens: dict[str, datetime] = {}
        self._cursors: dict[str, tuple[str, int]] = {}
        self._seq = 0
        self.grants = 0
        #: students by lower-cased email; enrollments in ``seq`` order, and their ``seq``
        self._by_email: dict[str, Student] = {}
        self._ordered: list[Enrollment] = []
        self._seqs: list[int] = []
        #: called with each change to the enrollments (a new one, a completion), as a plain
        #: JSON-ready record, inside the world's lock: how a journal keeps them
        self.journal: Callable[[dict[str, Any]], None] | None = None

    # ---------------------------------------------------------------- ids

    def _id(self, prefix: str) -> str:
        return f"{prefix}{self._rng.getrandbits(48):012x}"

    # ---------------------------------------------------------------- accounts

    def add_client(self, client_id: str, client_secret: str) -> None:
        with self._lock:
            self.clients[client_id] = client_secret

    def add_api_key(self, key: str) -> None:
        with self._lock:
            self.api_keys.add(key)

    def grant(
        self, grant_type: str | None, client_id: str | None, secret: str | None
    ) -> dict[str, Any]:
        if grant_type != "client_credentials":
            raise ApiError(
                400, "grant_type must be client_credentials", title="unsupported_grant_type"
            )
        with self._lock:
            known = self.clients.get(client_id or "")
            if known is None or secret is None or not hmac.compare_digest(known, secret):
                raise ApiError(401, "Client authentication failed", title="invalid_client")
            now = self.clock.now()
            expires = now + timedelta(seconds=self.token_lifetime)
            token = self._jwt(client_id or "", now, expires)
            self._tokens[token] = expires
            self.grants += 1
        return {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": self.token_lifetime,
            "scope": SCOPES,
        }

    def _jwt(self, subject: str, issued: datetime, expires: datetime) -> str:
        def part(value: dict[str, Any]) -> str:
            raw = json.dumps(value, separators=(",", ":")).encode()
            return base64.urlsafe_b64encode(raw).decode().rstrip("=")

        header = part({"alg": "HS256", "typ": "JWT"})
        payload = part(
            {
                "sub": subject,
                "iat": int(issued.timestamp()),
                "exp": int(expires.timestamp()),
                "jti": self._id(""),
                "scope": SCOPES,
            }
        )
        signature = hmac.new(self._signing_key, f"{header}.{payload}".encode(), hashlib.sha256)
        sig = base64.urlsafe_b64encode(signature.digest()).decode().rstrip("=")
        return f"{header}.{payload}.{sig}"

    def token_valid(self, token: str) -> bool:
        with self._lock:
            expires = self._tokens.get(token)
            return expires is not None and self.clock.now() < expires

    def expire_tokens(self) -> int:
        """Every token issued so far goes stale at once (the next call with one gets 401)."""
        with self._lock:
            count = len(self._tokens)
            self._tokens.clear()
            return count

    def api_key_valid(self, key: str) -> bool:
        with self._lock:
            return key in self.api_keys

    # ---------------------------------------------------------------- catalogue

    def add_course(self, title: str, course_id: str | None = None) -> Course:
        with self._lock:
            course = Course(course_id or self._id("crs"), title)
            self.courses[course.id] = course
            return course

    def student_for(
        self,
        email: str,
        first_name: str = "",
        last_name: str = "",
        *,
        student_id: str | None = None,
    ) -> Student:
        key = email.strip().lower()
        if "@" not in key:
            raise ApiError(400, "email must be an email address")
        with self._lock:
            known = self._by_email.get(key)
            if known is not None:
                return known
            student = Student(student_id or self._id("stu"), email.strip(), first_name, last_name)
            self.students[student.id] = student
            self._by_email[key] = student
            return student

    def add_enrollment(
        self,
        *,
        email: str,
        course_id: str,
        first_name: str = "",
        last_name: str = "",
        enrolled_at: datetime | None = None,
        completed_at: datetime | None = None,
        success_status: str | None = None,
        score: float | None = None,
        max_score: float | None = None,
        domain_name: str | None = None,
        enrollment_id: str | None = None,
        student_id: str | None = None,
    ) -> Enrollment:
        """A new enrollment (complete when ``completed_at`` is given; back-dating is allowed).
        ``enrollment_id`` and ``student_id`` (for a new student) are given by a seed or a
        journal; otherwise they are drawn."""
        if success_status is not None and success_status not in ("PASSED", "FAILED"):
            raise ApiError(400, "success_status must be PASSED, FAILED or null")
        with self._lock:
            if course_id not in self.courses:
                raise ApiError(404, f"no course {course_id[:40]!r}")
            if enrollment_id is not None and enrollment_id in self.enrollments:
                raise ApiError(409, f"enrollment {enrollment_id[:40]!r} exists already")
            student = self.student_for(email, first_name, last_name, student_id=student_id)
            self._seq += 1
            now = self.clock.now()
            started = enrolled_at or (min(now, completed_at) if completed_at else now)
            enrollment = Enrollment(
                seq=self._seq,
                id=enrollment_id or self._id("enr"),
                student_id=student.id,
                course_id=course_id,
                enrolled_at=started,
                completed_at=completed_at,
                success_status=success_status,
                score=score,
                max_score=max_score,
            )
            if domain_name:
                enrollment.domain_name = domain_name
            self.enrollments[enrollment.id] = enrollment
            self._ordered.append(enrollment)
            self._seqs.append(enrollment.seq)
            if self.journal is not None:
                self.journal(
                    {
                        "op": "enrollment",
                        "id": enrollment.id,
                        "student_id": student.id,
                        "email": student.email,
                        "first_name": student.first_name,
                        "last_name": student.last_name,
                        "course_id": course_id,
                        "enrolled_at": fmt_time(enrollment.enrolled_at),
                        "completed_at": fmt_time(completed_at) if completed_at else None,
                        "success_status": success_status,
                        "score": score,
                        "max_score": max_score,
                        "domain_name": enrollment.domain_name,
                    }
                )
            return enrollment

    def complete(
        self,
        enrollment_id: str,
        completed_at: datetime | None = None,
        success_status: str | None = None,
        score: float | None = None,
    ) -> Enrollment:
        """Mark an enrollment complete (again, for a retake), by default now."""
        with self._lock:
            enrollment = self.enrollments.get(enrollment_id)
            if enrollment is None:
                raise ApiError(404, f"no enrollment {enrollment_id[:40]!r}")
            enrollment.completed_at = completed_at or self.clock.now()
            enrollment.success_status = success_status
            enrollment.score = score
            if self.journal is not None:
                self.journal(
                    {
                        "op": "complete",
                        "id": enrollment.id,
                        "completed_at": fmt_time(enrollment.completed_at),
                        "success_status": success_status,
                        "score": score,
                    }
                )
            return enrollment

    def replay(self, record: dict[str, Any]) -> None:
        """Apply one journal record (as :attr:`journal` received it)."""

        def when(key: str) -> datetime | None:
            value = record.get(key)
            return None if value is None else parse_time(value, key)

        if record.get("op") == "enrollment":
            self.add_enrollment(
                email=str(record["email"]),
                course_id=str(record["course_id"]),
                first_name=str(record.get("first_name") or ""),
                last_name=str(record.get("last_name") or ""),
                enrolled_at=when("enrolled_at"),
                completed_at=when("completed_at"),
                success_status=record.get("success_status"),
                score=record.get("score"),
                max_score=record.get("max_score"),
                domain_name=record.get("domain_name"),
                enrollment_id=str(record["id"]),
                student_id=record.get("student_id"),
            )
        elif record.get("op") == "complete":
            self.complete(
                str(record["id"]),
                when("completed_at"),
                record.get("success_status"),
                record.get("score"),
            )

    # ---------------------------------------------------------------- queries

    def enrollment_page(
        self, query: EnrollmentQuery, cursor: str | None, size: int
    ) -> tuple[list[Enrollment], str | None]:
        """One page in enrollment order (not by ``completed_at``), and the next cursor."""
        fingerprint = repr(query)
        with self._lock:
            after = self._resolve_cursor(cursor, fingerprint)
            rows: list[Enrollment] = []
            ordered = self._ordered
            for index in range(bisect.bisect_right(self._seqs, after), len(ordered)):
                e = ordered[index]
                if self._matches(e, query):
                    rows.append(e)
                    if len(rows) > size:
                        break
            page, more = rows[:size], len(rows) > size
            return page, self._new_cursor(fingerprint, page[-1].seq) if more else None

    def course_page(
        self, title: str | None, cursor: str | None, size: int
    ) -> tuple[list[Course], str | None]:
        fingerprint = f"courses:{title}"
        with self._lock:
            after = self._resolve_cursor(cursor, fingerprint)
            ordered = list(self.courses.values())
            rows = [
                c
                for index, c in enumerate(ordered)
                if index >= after and (not title or title.lower() in c.title.lower())
            ]
            page, more = rows[:size], len(rows) > size
            next_at = ordered.index(page[-1]) + 1 if more else 0
            return page, self._new_cursor(fingerprint, next_at) if more else None

    def _resolve_cursor(self, cursor: str | None, fingerprint: str) -> int:
        if cursor is None:
            return 0
        found = self._cursors.get(cursor)
        if found is None or found[0] != fingerprint:
            raise ApiError(400, "Invalid cursor", title="invalid_cursor")
        return found[1]

    def _new_cursor(self, fingerprint: str, position: int) -> str:
        token = base64.urlsafe_b64encode(self._rng.randbytes(12)).decode().rstrip("=")
        self._cursors[token] = (fingerprint, position)
        return token

    def _matches(self, e: Enrollment, q: EnrollmentQuery) -> bool:
        student = self.students[e.student_id]
        checks = (
            q.progress_status is None or e.progress_status == q.progress_status,
            q.completed_gte is None
            or (e.completed_at is not None and e.completed_at >= q.completed_gte),
            q.completed_lte is None
            or (e.completed_at is not None and e.completed_at <= q.completed_lte),
            q.course_id is None or e.course_id == q.course_id,
            q.student_email is None or student.email.lower() == q.student_email.lower(),
            q.student_id is None or e.student_id == q.student_id,
            q.domains is None or e.domain_name in q.domains,
            q.active is None or e.active is q.active,
        )
        return all(checks)

    # ---------------------------------------------------------------- JSON:API

    def _type(self, plural: str) -> str:
        return plural[:-1] if self.singular_types else plural

    def enrollment_json(self, e: Enrollment) -> dict[str, Any]:
        return {
            "type": "enrollments",
            "id": e.id,
            "attributes": {
                "progress_status": e.progress_status,
                "success_status": e.success_status,
                "score": e.score,
                "max_score": e.max_score,
                "enrolled_at": fmt_time(e.enrolled_at),
                "completed_at": fmt_time(e.completed_at) if e.completed_at else None,
                "expires_at": None,
                "has_certificate": e.completed_at is not None,
                "domain_name": e.domain_name,
                "active": e.active,
            },
            "relationships": {
                "student": {"data": {"type": self._type("students"), "id": e.student_id}},
                "course": {"data": {"type": self._type("courses"), "id": e.course_id}},
            },
        }

    def student_json(self, student_id: str) -> dict[str, Any]:
        s = self.students[student_id]
        return {
            "type": self._type("students"),
            "id": s.id,
            "attributes": {"email": s.email, "first_name": s.first_name, "last_name": s.last_name},
        }

    def course_json(self, course_id: str) -> dict[str, Any]:
        c = self.courses[course_id]
        return {"type": self._type("courses"), "id": c.id, "attributes": {"title": c.title}}

    def included_for(self, rows: Iterable[Enrollment], include: set[str]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        seen: set[tuple[str, str]] = set()
        for e in rows:
            for kind, ident in (("student", e.student_id), ("course", e.course_id)):
                if kind in include and (kind, ident) not in seen:
                    seen.add((kind, ident))
                    out.append(
                        self.student_json(ident) if kind == "student" else self.course_json(ident)
                    )
        return out

    # ---------------------------------------------------------------- webhooks (v1)

    def add_webhook(self, body: Any) -> Webhook:
        if not isinstance(body, dict):
            raise ApiError(400, "Request body must be a JSON object")
        target = body.get("target_url")
        if not isinstance(target, str) or not target.startswith(("http://", "https://")):
            raise ApiError(400, "target_url must be an http(s) URL")
        event_type = body.get("event_type")
        if event_type is not None and event_type not in EVENT_TYPES:
            raise ApiError(400, "event_type is not a known event type")
        headers = body.get("additional_headers") or {}
        if not isinstance(headers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
        ):
            raise ApiError(400, "additional_headers must map header names to text")
        with self._lock:
            hook = Webhook(
                id=self._id("whk"),
                target_url=target,
                event_type=event_type,
                active=bool(body.get("active", True)),
                basic_auth_username=body.get("basic_auth_username") or None,
                basic_auth_password=body.get("basic_auth_password") or None,
                additional_headers=dict(headers),
            )
            self.webhooks[hook.id] = hook
            return hook

    def completion_event(self, e: Enrollment) -> dict[str, Any]:
        """A ``COURSE_COMPLETION`` body, shaped like the documented ``COURSE_ENROLLMENT`` one
        (reference §5) with the progress fields added."""
        student, course = self.students[e.student_id], self.courses[e.course_id]
        return {
            "event_type": "COURSE_COMPLETION",
            "timestamp": fmt_time(self.clock.now()),
            "user": {
                "id": student.id,
                "email": student.email,
                "first_name": student.first_name,
                "last_name": student.last_name,
            },
            "course": {
                "id": course.id,
                "published_course_id": f"pc-{course.id}",
                "title": course.title,
                "url": f"https://{e.domain_name}/{course.id}",
            },
            "domain": {"id": f"dom-{e.domain_name}", "name": e.domain_name},
            "enrollment": {
                "id": e.id,
                "completed_at": fmt_time(e.completed_at) if e.completed_at else None,
                "success_status": e.success_status,
            },
        }
