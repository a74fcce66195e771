"""Stand-ins for the outside world (Kubernetes, Jenkins, GitHub, Grafana, Slack).

Plain Python HTTP servers with no Django imports, used by the demo and the tests.
"""
