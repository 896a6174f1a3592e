"""When a follow-up may go out: the lead's local business hours, business days and holidays.

A send window is a local wall-clock interval on allowed weekdays (default Monday-Friday,
08:00-11:00), skipping the public holidays of the lead's country (the `holidays` library)
and any dates the deployment closes. A window may cross local midnight (22:00-02:00): it
belongs to the day it starts on. Local times are turned into instants by the IANA zone
rules, so daylight-saving days are handled by the zone, not by us: a window start that
falls in a spring-forward gap begins at the first instant after the gap; on a fall-back
day an ambiguous end time is the earlier one (never send late).

The scheduler's sort key is `next_opening(last contact + days between follow-ups)`, so
selection stays one range read per shard; the sender asks `is_open` before it sends.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

WEEKDAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# Longer than any run of closed days a real calendar has (a year of holidays cannot close every day).
_SEARCH_DAYS = 400


class SendWindowError(ValueError):
    """A send-window setting that cannot be used (bad time, day name or date)."""


@dataclass(frozen=True)
class SendWindow:
    start: time = time(8, 0)
    end: time = time(11, 0)
    weekdays: frozenset[int] = frozenset(range(5))  # Monday = 0
    closed_dates: frozenset[date] = frozenset()  # the deployment's own closing days, any country
    public_holidays: bool = True

    def __post_init__(self) -> None:
        if self.start == self.end:
            raise SendWindowError("the send window's start and end are the same time")
        if not self.weekdays:
            raise SendWindowError("the send window allows no weekday")

    @property
    def crosses_midnight(self) -> bool:
        return self.end < self.start

    def opens_on(self, day: date, country: str | None) -> bool:
        """Whether a window starts on this local date (allowed weekday, not closed, not a holiday)."""
        if day.weekday() not in self.weekdays or day in self.closed_dates:
            return False
        return not (self.public_holidays and country and is_public_holiday(country, day))

    def _interval(self, day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
        """The UTC instants the window starting on local `day` opens and closes."""
        opens = _instant(day, self.start, zone)
        closes = _instant(day + timedelta(days=1) if self.crosses_midnight else day, self.end, zone)
        return opens, closes

    def next_opening(self, earliest: datetime, zone: ZoneInfo, country: str | None = None) -> datetime:
        """The first instant at or after `earliest` inside a window, in UTC."""
        earliest = earliest.astimezone(UTC)
        # A window that crossed midnight may have started on the previous local day.
        day = earliest.astimezone(zone).date() - timedelta(days=1)
        for _ in range(_SEARCH_DAYS):
            if self.opens_on(day, country):
                opens, closes = self._interval(day, zone)
                if earliest < closes:
                    return max(earliest, opens)
            day += timedelta(days=1)
        raise SendWindowError(f"no send window in the {_SEARCH_DAYS} days after {earliest.isoformat()}")

    def closing(self, instant: datetime, zone: ZoneInfo, country: str | None = None) -> datetime | None:
        """When the window holding `instant` closes (UTC), or None when `instant` is outside every window."""
        instant = instant.astimezone(UTC)
        local_day = instant.astimezone(zone).date()
        for day in (local_day - timedelta(days=1), local_day):
            if self.opens_on(day, country):
                opens, closes = self._interval(day, zone)
                if opens <= instant < closes:
                    return closes
        return None

    def is_open(self, instant: datetime, zone: ZoneInfo, country: str | None = None) -> bool:
        return self.closing(instant, zone, country) is not None


def _instant(day: date, wall: time, zone: ZoneInfo) -> datetime:
    """The first instant (UTC) at which the local clock on `day` shows `wall` or later.

    An ambiguous time (fall back) is its first occurrence; a time inside a spring-forward
    gap is the instant the clocks jump, the first one past the gap."""
    local = datetime.combine(day, wall, tzinfo=zone)
    after_gap = local.astimezone(UTC)  # fold=0: the offset before any transition
    if after_gap.astimezone(zone).replace(tzinfo=None) == local.replace(tzinfo=None):
        return after_gap
    # In a gap: fold=1 maps before it; the jump lies between, found to the second.
    low = int(local.replace(fold=1).astimezone(UTC).timestamp())
    high = int(after_gap.timestamp())
    wall_clock = local.replace(tzinfo=None)
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, zone).replace(tzinfo=None) >= wall_clock:
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, UTC)


# --- parsing the deployment's settings --------------------------------------------------------

_TIME = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


def parse_window_times(text: str) -> tuple[time, time]:
    """`08:00-11:00` -> (08:00, 11:00)."""
    parts = [part.strip() for part in text.split("-")]
    if len(parts) != 2:
        raise SendWindowError(f"send window must look like 08:00-11:00, got {text!r}")
    times = []
    for part in parts:
        match = _TIME.match(part)
        if not match:
            raise SendWindowError(f"send window time must be HH:MM (24-hour), got {part!r}")
        times.append(time(int(match.group(1)), int(match.group(2))))
    return times[0], times[1]


def parse_weekdays(text: str) -> frozenset[int]:
    """`mon-fri`, `mon,wed,fri` or `sun-thu` -> weekday numbers (Monday = 0)."""
    days: set[int] = set()
    for chunk in (part.strip().lower() for part in text.split(",") if part.strip()):
        ends = [end.strip()[:3] for end in chunk.split("-")]
        if len(ends) > 2 or any(end not in WEEKDAY_NAMES for end in ends):
            raise SendWindowError(f"send days must be day names such as mon-fri or mon,wed,fri, got {chunk!r}")
        first, last = WEEKDAY_NAMES.index(ends[0]), WEEKDAY_NAMES.index(ends[-1])
        span = (last - first) % 7
        days.update((first + offset) % 7 for offset in range(span + 1))
    if not days:
        raise SendWindowError("send days name no day")
    return frozenset(days)


def parse_closed_dates(text: str) -> frozenset[date]:
    """`2026-12-24,2026-12-31` -> dates."""
    closed = set()
    for part in (piece.strip() for piece in text.split(",") if piece.strip()):
        try:
            closed.add(date.fromisoformat(part))
        except ValueError as error:
            raise SendWindowError(f"closed date must be YYYY-MM-DD, got {part!r}") from error
    return frozenset(closed)


# --- holidays -----------------------------------------------------------------------------------


@lru_cache(maxsize=256)
def _holiday_calendar(country: str) -> Callable[[date], bool] | None:
    # Imported on first use: the library loads each country's rules lazily, and a
    # deployment without public-holiday skipping never pays for it.
    import holidays

    try:
        calendar = holidays.country_holidays(country)
    except NotImplementedError:  # a country the library has no calendar for
        return None
    return calendar.__contains__


def is_public_holiday(country: str, day: date) -> bool:
    contains = _holiday_calendar(country.upper())
    return bool(contains and contains(day))


# --- the lead's zone ------------------------------------------------------------------------------


@dataclass(frozen=True)
class LeadZone:
    """The zone a lead's windows are computed in, its country (for holidays) and where they came from."""

    zone: str
    country: str | None
    source: str  # "timezone", "country", "email domain", "website domain" or "default"
    notes: tuple[str, ...] = field(default=())

    @property
    def zoneinfo(self) -> ZoneInfo:
        return ZoneInfo(self.zone)


def valid_zone(name: str) -> bool:
    if not name or name != name.strip() or ".." in name or name.startswith("/"):
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


# Countries with several zones: the one most of their business population works in.
# (Anything else with several zones takes the first zone tzdata lists for it.)
PRIMARY_ZONES = {
    "AR": "America/Argentina/Buenos_Aires",
    "AU": "Australia/Sydney",
    "BR": "America/Sao_Paulo",
    "CA": "America/Toronto",
    "CD": "Africa/Kinshasa",
    "CL": "America/Santiago",
    "CN": "Asia/Shanghai",
    "DE": "Europe/Berlin",
    "EC": "America/Guayaquil",
    "ES": "Europe/Madrid",
    "ID": "Asia/Jakarta",
    "KZ": "Asia/Almaty",
    "MN": "Asia/Ulaanbaatar",
    "MX": "America/Mexico_City",
    "MY": "Asia/Kuala_Lumpur",
    "NZ": "Pacific/Auckland",
    "PT": "Europe/Lisbon",
    "RU": "Europe/Moscow",
    "UA": "Europe/Kyiv",
    "US": "America/New_York",
    "UZ": "Asia/Tashkent",
}
# Country-code domains sold worldwide as generic names: they say nothing about where a lead is.
GENERIC_CCTLDS = frozenset(
    {
        "ac",
        "ai",
        "am",
        "app",
        "cc",
        "co",
        "fm",
        "gg",
        "im",
        "io",
        "la",
        "ly",
        "me",
        "nu",
        "sh",
        "so",
        "st",
        "to",
        "tv",
        "vc",
        "ws",
    }
)
_CCTLD_COUNTRY = {"uk": "GB"}  # the one country-code domain that is not its ISO code
COUNTRY_ALIASES = {
    "usa": "US",
    "u.s.": "US",
    "u.s.a.": "US",
    "united states of america": "US",
    "america": "US",
    "uk": "GB",
    "u.k.": "GB",
    "united kingdom": "GB",
    "great britain": "GB",
    "england": "GB",
    "scotland": "GB",
    "wales": "GB",
    "northern ireland": "GB",
    "south korea": "KR",
    "korea": "KR",
    "russia": "RU",
    "vietnam": "VN",
    "czech republic": "CZ",
    "czechia": "CZ",
    "uae": "AE",
    "holland": "NL",
    "the netherlands": "NL",
}


def _tz_table(name: str) -> list[list[str]]:
    from importlib.resources import files

    text = files("tzdata").joinpath("zoneinfo", name).read_text(encoding="utf-8")
    return [line.split("\t") for line in text.splitlines() if line and not line.startswith("#")]


@lru_cache(maxsize=1)
def _zones_by_country() -> dict[str, list[str]]:
    zones: dict[str, list[str]] = {}
    for row in _tz_table("zone.tab"):
        zones.setdefault(row[0], []).append(row[2])
    return zones


@lru_cache(maxsize=1)
def _country_by_zone() -> dict[str, str]:
    return {zone: country for country, names in _zones_by_country().items() for zone in names}


@lru_cache(maxsize=1)
def _zone_links() -> dict[str, str]:
    """Old and alias zone names (US/Eastern, Asia/Calcutta, Europe/Kiev) -> the zone they link to."""
    from importlib.resources import files

    text = files("tzdata").joinpath("zoneinfo", "tzdata.zi").read_text(encoding="utf-8")
    return {parts[2]: parts[1] for parts in (line.split() for line in text.splitlines()) if parts[:1] == ["L"]}


def zone_country(zone: str) -> str | None:
    """The country a zone name belongs to: zone.tab's own entry (Europe/Copenhagen is Denmark even
    where tzdata links it to Berlin), else that of the zone an alias links to (US/Eastern -> US)."""
    countries = _country_by_zone()
    for _ in range(4):  # links point at zones, rarely at other links
        if zone in countries:
            return countries[zone]
        if zone not in _zone_links():
            return None
        zone = _zone_links()[zone]
    return None


@lru_cache(maxsize=1)
def _country_codes_by_name() -> dict[str, str]:
    names = {row[1].strip().lower(): row[0] for row in _tz_table("iso3166.tab")}
    names.update(COUNTRY_ALIASES)
    return names


def country_code(value: str) -> str | None:
    """An ISO 3166 alpha-2 code from a code or an English country name, else None."""
    text = " ".join(value.split()).lower()
    if not text:
        return None
    if len(text) == 2 and text.upper() in _zones_by_country():
        return text.upper()
    return _country_codes_by_name().get(text)


def zone_of_country(country: str) -> str | None:
    zones = _zones_by_country().get(country)
    if not zones:
        return None
    return PRIMARY_ZONES.get(country, zones[0])


def _domain_country(host: str) -> str | None:
    """The country a host's country-code domain names (`acme.de` -> DE), if it names one."""
    label = host.strip().rstrip(".").rsplit(".", 1)[-1].lower()
    if len(label) != 2 or label in GENERIC_CCTLDS:
        return None
    code = _CCTLD_COUNTRY.get(label, label.upper())
    return code if code in _zones_by_country() else None


def _website_host(website: str) -> str:
    text = website.strip().lower()
    text = text.split("://", 1)[-1]
    return re.split(r"[/?#:]", text, maxsplit=1)[0].rsplit("@", 1)[-1]


def lead_zone(
    *, timezone: str = "", country: str = "", email: str = "", website: str = "", default_zone: str = "UTC"
) -> LeadZone:
    """The lead's zone by the documented rule: its `timezone`, else its `country`, else the
    country-code domain of its email, then of its website, else the deployment's default."""
    notes: list[str] = []
    country_from_attribute = country_code(country) if country else None
    if country and not country_from_attribute:
        notes.append(f"country {country!r} is not a country reengage knows; ignored")
    if timezone:
        if valid_zone(timezone):
            return LeadZone(timezone, country_from_attribute or zone_country(timezone), "timezone", tuple(notes))
        notes.append(f"timezone {timezone!r} is not an IANA time zone name; ignored")
    if country_from_attribute:
        zone = zone_of_country(country_from_attribute)
        if zone:
            return LeadZone(zone, country_from_attribute, "country", tuple(notes))
    for source, host in (
        ("email domain", email.rsplit("@", 1)[-1] if "@" in email else ""),
        ("website domain", _website_host(website)),
    ):
        found = _domain_country(host) if host else None
        zone = zone_of_country(found) if found else None
        if found and zone:
            return LeadZone(zone, found, source, tuple(notes))
    return LeadZone(default_zone, zone_country(default_zone), "default", tuple(notes))
