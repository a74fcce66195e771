"""The REST API, /api/v1/ (Django REST framework, OpenAPI by drf-spectacular).

models.py       ApiToken (hashed, scoped, expiring, revocable), ServiceAccount
auth.py         bearer-token authentication and the scope permission
views.py        services, environments, releases, builds, freezes, locks, DORA, me
deployments.py  deployments: list, request, detail with long-poll, approve, reject, cancel, rollback
records.py      writes besides deployments (releases, freezes, locks), each after its rule
serializers.py  what is read and written; schema.py the OpenAPI side; errors.py the one error shape
pages.py        the "API tokens" page
"""
