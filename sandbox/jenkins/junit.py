"""The JUnit plugin's test report for a sandbox build: suites of cases, some failed.

`GET <build>/testReport/api/json` on a real Jenkins (hudson.tasks.junit.TestResult) lists
`suites[].cases[]` with `className`, `name`, `status` (PASSED, FAILED, REGRESSION, FIXED,
SKIPPED), `errorDetails` and `errorStackTrace`. The sandbox makes the cases up from the counts
so that the same build always reports the same names and messages.

A build whose VERSION (the image tag) ends in `-testfail` fails two of its tests while the
build itself still succeeds, as a pipeline does when it records results with
`junit testResults: '…', skipMarkingBuildUnstable: true` and leaves the verdict to the portal.
"""

TESTFAIL_SUFFIX = "-testfail"
TESTFAIL_FAILURES = 2
SUITES = ("checkout", "cart", "catalog", "group_buy", "payments")
MESSAGES = (
    "AssertionError: expected status 200, got 500",
    "AssertionError: expected 3 items in the cart, got 2",
    "TimeoutError: the group buy did not close within 5 s",
)


def fails_tests(params: dict[str, str]) -> bool:
    return (params.get("VERSION") or "").endswith(TESTFAIL_SUFFIX)


def case_name(i: int) -> tuple[str, str]:
    """(className, name) of test `i` (0-based)."""
    suite = SUITES[i % len(SUITES)]
    return f"tests.test_{suite}.{suite.title().replace('_', '')}Test", f"test_case_{i + 1}"


def failed_names(tests: dict) -> list[str]:
    return [".".join(case_name(i)) for i in range(int(tests.get("failed", 0)))]


def cases(tests: dict) -> list[dict]:
    """Every case: the first `failed` fail, the next `skipped` are skipped, the rest pass."""
    failed, skipped = int(tests.get("failed", 0)), int(tests.get("skipped", 0))
    result = []
    for i in range(int(tests.get("total", 0))):
        class_name, name = case_name(i)
        status = "FAILED" if i < failed else "SKIPPED" if i < failed + skipped else "PASSED"
        message = MESSAGES[i % len(MESSAGES)] if status == "FAILED" else None
        result.append(
            {
                "_class": "hudson.tasks.junit.CaseResult",
                "age": 1 if status == "FAILED" else 0,
                "className": class_name,
                "duration": 0.01 * (i % 7 + 1),
                "errorDetails": message,
                "errorStackTrace": f'Traceback (most recent call last):\n  File "{name}.py"\n{message}'
                if message
                else None,
                "failedSince": 0,
                "name": name,
                "skipped": status == "SKIPPED",
                "skippedMessage": "not run in the sandbox" if status == "SKIPPED" else None,
                "status": status,
                "stderr": None,
                "stdout": None,
            }
        )
    return result


def report(tests: dict, duration_seconds: float) -> dict:
    """The whole `testReport/api/json` document."""
    by_suite: dict[str, list[dict]] = {}
    for case in cases(tests):
        by_suite.setdefault(case["className"], []).append(case)
    suites = [
        {
            "cases": suite_cases,
            "duration": round(sum(c["duration"] for c in suite_cases), 3),
            "enclosingBlockNames": ["test"],
            "enclosingBlocks": [],
            "id": None,
            "name": name,
            "nodeId": None,
            "stderr": None,
            "stdout": None,
            "timestamp": None,
        }
        for name, suite_cases in by_suite.items()
    ]
    return {
        "_class": "hudson.tasks.junit.TestResult",
        "testActions": [],
        "duration": duration_seconds,
        "empty": not tests,
        "failCount": int(tests.get("failed", 0)),
        "passCount": int(tests.get("passed", 0)),
        "skipCount": int(tests.get("skipped", 0)),
        "suites": suites,
    }
