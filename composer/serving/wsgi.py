"""gunicorn's entry point: `composer_serving.wsgi:application`."""

from .app import create_app

application = create_app()
