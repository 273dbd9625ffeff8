# gunicorn.conf.py for h2workers behind nginx (see examples/howto/nginx.conf)
bind = "127.0.0.1:8000"
worker_class = "h2workers.GThreadH2"
threads = 16
forwarded_allow_ips = "127.0.0.1"  # nginx's address: trust its X-Forwarded-* headers
# nginx before 1.29 takes a 103 Early Hints from its upstream for the final
# response and fails the request: send them to HTTP/2 clients only
http1_early_hints = False
