from django.urls import path

from releases.webhooks import github, jenkins, slack

urlpatterns = [
    path("jenkins/", jenkins.receive, name="hook_jenkins"),
    path("github/", github.receive, name="hook_github"),
    path("slack/", slack.receive, name="hook_slack"),
]
