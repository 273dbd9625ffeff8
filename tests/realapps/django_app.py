"""A one-file Django project doing what Django apps do, for tests/realapps."""

from __future__ import annotations

import django
from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY="h2workers-tests-only",
    ROOT_URLCONF=__name__,
    ALLOWED_HOSTS=["*"],
    MIDDLEWARE=[
        "django.middleware.common.CommonMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
    ],
    INSTALLED_APPS=[],
    TEMPLATES=[],
    DATABASES={},
    USE_TZ=True,
)
django.setup()

from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.http import (  # noqa: E402
    FileResponse,
    HttpRequest,
    HttpResponse,
    JsonResponse,
    StreamingHttpResponse,
)
from django.middleware.csrf import get_token  # noqa: E402
from django.urls import path  # noqa: E402

from tests.realapps.flask_app import big_file  # noqa: E402


def file(request: HttpRequest) -> FileResponse:
    return FileResponse(big_file().open("rb"), content_type="application/octet-stream")


def stream(request: HttpRequest) -> StreamingHttpResponse:
    count = int(request.GET.get("n", "1000"))
    return StreamingHttpResponse((f"row {i}\n" for i in range(count)), content_type="text/plain")


def form(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        return JsonResponse({"name": request.POST.get("name"), "secure": request.is_secure()})
    token = get_token(request)
    return HttpResponse(
        f'<form method="post"><input type="hidden" name="csrfmiddlewaretoken" value="{token}">'
        '<input name="name"></form>'
    )


def index(request: HttpRequest) -> HttpResponse:
    return HttpResponse("django app")


urlpatterns = [path("hello", index), path("file", file), path("stream", stream), path("form", form)]
application = get_wsgi_application()

# Django's ASGI handler over the same views: AsgiH2 serves it in place of the
# WSGI one (tests.conftest.ASGI_TWINS); its FileResponse uses pathsend.
from django.core.asgi import get_asgi_application  # noqa: E402

asgi_application = get_asgi_application()
