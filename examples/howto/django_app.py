"""A one-file Django project, served as WSGI (GThreadH2) and as ASGI
(AsgiH2). In a real project these are ``mysite.wsgi`` and ``mysite.asgi``."""

import django
from django.conf import settings

settings.configure(
    ROOT_URLCONF=__name__,
    ALLOWED_HOSTS=["localhost", "127.0.0.1"],
    SECRET_KEY="only-for-this-example",
)
django.setup()

from django.core.asgi import get_asgi_application  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.http import HttpResponse  # noqa: E402
from django.urls import path  # noqa: E402


def index(request):
    scope = getattr(request, "scope", None)  # an ASGI request's
    protocol = f"HTTP/{scope['http_version']}" if scope else request.META["SERVER_PROTOCOL"]
    return HttpResponse(f"Django over {protocol}\n", content_type="text/plain")


urlpatterns = [path("", index)]
application = get_wsgi_application()  # -k h2workers.GThreadH2 django_app:application
asgi_application = get_asgi_application()  # -k h2workers.AsgiH2 django_app:asgi_application
