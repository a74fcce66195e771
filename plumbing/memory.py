"""Long-running processes (web, watcher): what they made while starting lives as long as they do."""

import gc


def freeze_what_start_up_made() -> None:
    """Move every object made so far (modules, classes, the Kubernetes client's models, URL
    patterns: about 150,000) out of the collector's sight. A full collection then walks only
    what requests and events make; walking them all took about 80 ms, a pause that landed on
    some request, broadcast or watch event."""
    gc.collect()
    gc.freeze()
