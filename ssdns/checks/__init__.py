"""Every check ssdns runs, one module per family, all registered in one catalogue (registry.py).

Adding a check is one function in its family's module, decorated with `@check(...)`, and its test;
a new family is a new module here. The report's columns, the finding order, JUnit and the metrics
follow from the registry. Family modules are imported when the catalogue is first used.
"""

from ssdns.checks.registry import Check, Judgement, catalogue, columns, judge, order

__all__ = ["Check", "Judgement", "catalogue", "columns", "judge", "order"]
