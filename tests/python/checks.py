"""The one check helper the SDK scripts share: prints `ok NAME` or fails with
the detail, and counts what passed for the closing `N passed, 0 failed` line
the Rust side looks for."""

import sys

passed = 0


def check(name, cond, detail=""):
    global passed
    if not cond:
        print(f"FAILED {name}: {detail}")
        sys.exit(1)
    passed += 1
    print(f"ok {name}")


def done():
    print(f"{passed} passed, 0 failed")
