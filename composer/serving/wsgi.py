"""gunicorn's entry point: `composer_serving.wsgi:application`."""

from .app import create_app
from .batching import replace_this_worker
from .errors import answer_stopped_worker

application = answer_stopped_worker(create_app(on_overrun=replace_this_worker))
