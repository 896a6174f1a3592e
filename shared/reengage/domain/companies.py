"""Which company a lead works at, as the one key the company-wide pause groups by.

The key is the registrable domain (public suffix list, tldextract's bundled snapshot:
Lambda has no network) of the lead's email address, or of its website when the address
is at a public mail provider. Leads at public mail providers with no company website have
no company key: a reply from one gmail.com user must never pause every other gmail.com user.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

# Mailbox providers anyone can sign up to (and their country variants that matter for B2B lists).
PUBLIC_MAIL_DOMAINS = frozenset(
    {
        "aol.com", "att.net", "bigpond.com", "btinternet.com", "comcast.net", "fastmail.com", "free.fr",
        "freenet.de", "gmail.com", "gmx.at", "gmx.ch", "gmx.com", "gmx.de", "gmx.net", "googlemail.com",
        "hey.com", "hotmail.co.uk", "hotmail.com", "hotmail.de", "hotmail.fr", "hotmail.it", "icloud.com",
        "laposte.net", "libero.it", "live.com", "live.co.uk", "live.de", "live.fr", "mac.com", "mail.com",
        "mail.ru", "me.com", "msn.com", "naver.com", "orange.fr", "outlook.com", "outlook.de", "outlook.fr",
        "pm.me", "proton.me", "protonmail.com", "qq.com", "rediffmail.com", "seznam.cz", "sfr.fr",
        "t-online.de", "tutanota.com", "verizon.net", "wanadoo.fr", "web.de", "yahoo.co.in", "yahoo.co.jp",
        "yahoo.co.uk", "yahoo.com", "yahoo.de", "yahoo.fr", "yandex.com", "yandex.ru", "ymail.com",
        "zoho.com", "163.com", "126.com",
    }
)  # fmt: skip
# The same providers under every country suffix (hotmail.es, yahoo.com.au, gmx.fr, outlook.com.br):
# a registrable domain whose name is one of these is a public mailbox whatever its suffix.
PUBLIC_MAIL_BRANDS = frozenset(
    {
        "gmail", "googlemail", "hotmail", "outlook", "live", "msn", "yahoo", "ymail", "rocketmail", "aol",
        "gmx", "icloud", "yandex", "protonmail", "proton", "tutanota", "tuta", "zoho", "qq", "naver",
        "hanmail", "daum", "rediffmail", "libero", "laposte", "wanadoo", "t-online", "freenet", "seznam",
        "bigpond", "btinternet", "comcast", "verizon", "rambler", "sina", "sohu", "163", "126", "yeah",
        "aliyun", "onet", "interia", "virgilio", "tiscali", "optusnet", "sympatico", "mailbox", "posteo",
    }
)  # fmt: skip
# Websites that are profiles on someone else's platform, not a company's own site: two leads whose
# website is a LinkedIn page are not colleagues.
SHARED_WEBSITE_DOMAINS = frozenset(
    {
        "linkedin.com", "facebook.com", "fb.com", "twitter.com", "x.com", "instagram.com", "youtube.com",
        "tiktok.com", "pinterest.com", "github.com", "gitlab.com", "bitbucket.org", "medium.com",
        "substack.com", "about.me", "linktr.ee", "xing.com", "crunchbase.com", "angel.co", "wellfound.com",
        "yelp.com", "google.com", "wix.com", "wixsite.com", "squarespace.com", "wordpress.com",
        "notion.site", "carrd.co", "behance.net", "dribbble.com", "calendly.com", "t.me", "wa.me",
    }
)  # fmt: skip


def is_public_mail_domain(domain: str) -> bool:
    return domain in PUBLIC_MAIL_DOMAINS or domain.split(".", 1)[0] in PUBLIC_MAIL_BRANDS


@lru_cache(maxsize=1)
def _extractor() -> Any:
    import tldextract  # loaded on first use: only the paths that group by company pay for it

    return tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None, include_psl_private_domains=True)


@lru_cache(maxsize=4096)  # a bulk import asks for the same few company domains again and again
def registrable_domain(host: str) -> str | None:
    """`mail.acme.co.uk` -> `acme.co.uk`; None for hosts with no registrable part (`localhost`, `co.uk`)."""
    text = host.strip().rstrip(".").lower()
    if not text:
        return None
    try:
        text = text.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    parts = _extractor()(text)
    if not parts.domain or not parts.suffix:
        return None
    return f"{parts.domain}.{parts.suffix}"


def _website_host(website: str) -> str:
    text = website.strip().lower().split("://", 1)[-1]
    for separator in "/?#":
        text = text.split(separator, 1)[0]
    return text.rsplit("@", 1)[-1].split(":", 1)[0]


def company_key(email: str, website: str = "") -> str | None:
    """The company a lead belongs to for the company-wide pause, or None when it has none."""
    domain = registrable_domain(email.rsplit("@", 1)[-1]) if "@" in email else None
    if domain and not is_public_mail_domain(domain):
        return domain
    site = registrable_domain(_website_host(website)) if website else None
    if site and not is_public_mail_domain(site) and site not in SHARED_WEBSITE_DOMAINS:
        return site
    return None
