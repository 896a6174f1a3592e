"""The company key the company-wide pause groups leads by."""

from __future__ import annotations

import pytest

from reengage.domain.companies import company_key


@pytest.mark.parametrize(
    ("email", "website", "expected"),
    [
        ("ann@acme.com", "", "acme.com"),
        ("ann@Mail.Acme.co.uk", "", "acme.co.uk"),  # subdomain and public suffix with two labels
        ("ann@eu.acme.com", "https://www.acme.com", "acme.com"),
        ("ann@gmail.com", "https://www.acme.de/about", "acme.de"),  # public provider: the website decides
        ("ann@gmail.com", "", None),  # never group every gmail.com user
        ("ann@GMAIL.COM", "gmail.com", None),
        ("kai@bücher.de", "", "xn--bcher-kva.de"),  # IDN and its punycode form are one company
        ("kai@xn--bcher-kva.de", "", "xn--bcher-kva.de"),
        ("dev@alice.github.io", "", "alice.github.io"),  # private suffixes: two users are two companies
        ("root@localhost", "", None),
        ("hm1@hotmail.es", "", None),  # a provider under any country suffix
        ("y@yahoo.com.au", "", None),
        ("o@outlook.com.br", "", None),
        ("li1@outlook.com", "https://www.linkedin.com/in/li-one", None),  # a profile page is not a company
        ("ann@gmail.com", "https://github.com/ann", None),
        ("ann@gmail.com", "https://acme.wixsite.com/home", "acme.wixsite.com"),  # private suffix: own site
        ("ann@yahooligans-consulting.com", "", "yahooligans-consulting.com"),  # a brand inside a word
        ("", "", None),
    ],
)
def test_company_key(email: str, website: str, expected: str | None) -> None:
    assert company_key(email, website) == expected
