# h2workers with the example site (examples/http2_features), for the
# compose demo (docker-compose.yml). The replicas serve h2c on port 8000;
# TLS ends at the proxy in front of them.
FROM python:3.12-slim

WORKDIR /srv/h2workers
COPY pyproject.toml README.md ./
COPY h2workers ./h2workers
RUN pip install --no-cache-dir ".[asgi]"
COPY examples ./examples

RUN useradd --system --no-create-home h2workers
USER h2workers
EXPOSE 8000
CMD ["gunicorn", "--pythonpath", "examples/http2_features", \
     "--worker-class", "h2workers.GThreadH2", "--bind", "0.0.0.0:8000", "wsgi_app:app"]
