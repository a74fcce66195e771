from django.urls import path

from releases import consumers

websocket_urlpatterns = [
    path("ws/deployments/<int:pk>/", consumers.DeploymentConsumer.as_asgi()),
    path("ws/activity/", consumers.ActivityConsumer.as_asgi()),
    path("ws/builds/<int:pk>/", consumers.BuildConsumer.as_asgi()),
]
