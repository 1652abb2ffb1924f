"""ssdns: check the stable identity a StatefulSet promises (DNS, HTTP, API, volumes)."""

__version__ = "0.1.0"
