"""Every check ssdns runs, one module per family, all registered in one catalogue (registry.py).

Adding a check is one function in its family's module, decorated with `@check(...)`, and its test;
the report's columns, the finding order, JUnit and the metrics follow from the registry.
"""

from ssdns.checks import api, disruption, dns, history, http, records, storage
from ssdns.checks.registry import Check, Judgement, catalogue, columns, judge, order

__all__ = ["Check", "Judgement", "api", "catalogue", "columns", "disruption", "dns", "history", "http", "judge",
           "order", "records", "storage"]
