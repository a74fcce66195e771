"""The bottom layer: plumbing every app shares, and the clients of outside systems.

`live` (the one broadcast helper), `queues` (the one enqueue helper and retry policy),
`fragments` (rendered page parts kept until a change they show, with its one table of
freshness tokens), `config` (settings from the environment), `crypto` (secrets at rest) and
`integrations` (one thin client per outside system). Nothing here imports `portal`, `releases` or
`clusters`; tests/test_layers.py keeps it so.
"""
