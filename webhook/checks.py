"""Small checks and renderings shared by the `webhook` and `certs` packages.

Owns: the Kubernetes name syntax (DNS-1123 labels and subdomains, qualified names such as
annotation keys), the PEM certificate block pattern, and `one_line`, which keeps a message on
one line for a log field, an HTTP error body or a CLI error. Pure: the standard library only.
"""

from __future__ import annotations

import re

# apimachinery's pkg/util/validation: IsDNS1123Label, IsDNS1123Subdomain, IsQualifiedName.
DNS_LABEL_MAX = 63
DNS_SUBDOMAIN_MAX = 253
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_QUALIFIED_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")

# One PEM certificate block; group 1 is its base64 body.
PEM_CERTIFICATE = re.compile(
    rb"-----BEGIN CERTIFICATE-----\r?\n(.+?)-----END CERTIFICATE-----", re.DOTALL
)


def is_dns_label(text: str) -> bool:
    """A DNS-1123 label: lower-case letters, digits and '-', at most 63, alphanumeric ends."""
    return len(text) <= DNS_LABEL_MAX and _DNS_LABEL.fullmatch(text) is not None


def is_dns_subdomain(text: str) -> bool:
    """Dot-separated DNS-1123 labels, at most 253 characters in all (apimachinery bounds only
    the whole; an X.509 DNS name also bounds each label: see `is_dns_name`)."""
    return len(text) <= DNS_SUBDOMAIN_MAX and _DNS_SUBDOMAIN.fullmatch(text) is not None


def is_dns_name(text: str) -> bool:
    """A DNS name for a certificate: a DNS-1123 subdomain whose every label is a DNS label."""
    return len(text) <= DNS_SUBDOMAIN_MAX and all(map(is_dns_label, text.split(".")))


def is_qualified_name(text: str) -> bool:
    """An annotation or label key: an optional DNS subdomain prefix and '/', then a name of at
    most 63 characters of letters, digits, '-', '_' and '.' with alphanumeric ends."""
    prefix, slash, name = text.rpartition("/")
    if slash and not is_dns_subdomain(prefix):
        return False
    return len(name) <= DNS_LABEL_MAX and _QUALIFIED_NAME.fullmatch(name) is not None


def one_line(text: str) -> str:
    """The text with every run of whitespace, line breaks included, made one space."""
    return " ".join(text.split())
