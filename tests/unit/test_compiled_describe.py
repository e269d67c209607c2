from __future__ import annotations

from worker.compiled import MODULES, describe


def test_the_start_up_line_says_which_build_runs() -> None:
    assert describe(dict.fromkeys(MODULES, True)).startswith(f"compiled (mypyc): {len(MODULES)} ")
    assert describe(dict.fromkeys(MODULES, False)).startswith("pure Python: ")
    mixed = {**dict.fromkeys(MODULES, True), "worker.windows.plan": False}
    assert describe(mixed) == "partly compiled: pure Python for worker.windows.plan"
