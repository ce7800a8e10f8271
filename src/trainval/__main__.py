"""The ``trainval`` command and ``python -m trainval``: the CLI, quiet even when interrupted while it loads."""

from __future__ import annotations

import signal
import sys
from types import FrameType


def main() -> int:
    """Run the CLI. Ctrl-C ends it with one line, not a traceback, whenever it comes: while torch is
    still importing (the interrupt is noted, and acted on once the imports are done, so that no
    library is left half-imported), or during the run (the CLI stops there and says so)."""
    interrupted, loaded = False, False

    def on_interrupt(signum: int, frame: FrameType | None) -> None:
        nonlocal interrupted
        interrupted = True
        if loaded:
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        from trainval.cli import main as run_cli
        if interrupted:
            print("trainval: interrupted", file=sys.stderr)
            return 130
        loaded = True
        return run_cli()
    except Exception:
        if interrupted:  # the interrupt broke some library's work half-way: what follows is its consequence
            print("trainval: interrupted", file=sys.stderr)
            return 130
        raise
    finally:
        signal.signal(signal.SIGINT, previous)


if __name__ == "__main__":
    sys.exit(main())
